"""Sem-Mem Streamlit app, standalone: ``streamlit run app.py``.

Memories live in this process (``MEMORY_STORAGE_DIR``, default ``./local_memory``):
L2 is shared by every browser session, L1 is per session. With ``SEMMEM_API_URL``
set, the same app talks to the API server instead. See ``docs/ui.md``.
"""

from sem_mem.ui.app import main

main()
