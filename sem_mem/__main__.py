"""``python -m sem_mem``: the ``sem-mem`` command line."""

from sem_mem.cli import main

main()
