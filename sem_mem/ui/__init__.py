"""The Streamlit UI: one app over a small client interface (in-process or HTTP).

``sem_mem.ui.client`` offers the interface (``interface.py``) and its two
implementations (``local_client.py``, ``http_client.py``) and imports no Streamlit;
``sem_mem.ui.app`` is the app (``run(client_factory)``), ``sem_mem.ui.launch`` starts it
with ``streamlit run``. See ``docs/ui.md``.
"""

__all__: list[str] = []
