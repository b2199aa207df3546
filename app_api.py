"""Sem-Mem Streamlit app as a client of the API server: ``streamlit run app_api.py``.

Talks to ``SEMMEM_API_URL`` (default ``http://localhost:8000``; start the server with
``uvicorn sem_mem.server:app``), sending ``SEMMEM_API_KEY`` as the bearer key if set.
See ``docs/ui.md``.
"""

from sem_mem.ui.app import main

main(fallback_api_url="http://localhost:8000")
