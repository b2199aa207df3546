from sem_mem.server import __getattr__  # noqa: F401  (`uvicorn server:app`, built lazily)
