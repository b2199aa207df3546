"""A real PostgreSQL + pgvector server for the tests, started once per test session.

The ``pgserver`` wheel bundles PostgreSQL and pgvector; the server runs in a temp
folder and listens on a unix socket only. Run as root (as CI does), pgserver runs
PostgreSQL as a system user ``pgserver``, so the folder is made world-accessible.

``SEMMEM_TEST_DATABASE_URL`` points the tests at an existing server instead (a URL of a
database on which the user may ``CREATE DATABASE``). Without either, the PostgreSQL
tests are skipped with the reason; with ``SEMMEM_REQUIRE_PG=1`` (set in CI) they fail.

Each test gets a fresh database (``database()``), dropped again afterwards.
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

__all__ = ["PgCluster", "cluster_or_skip"]


class PgCluster:
    """One server; hands out throw-away databases."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self._names = itertools.count(1)
        self._prefix = f"semmem_test_{os.getpid()}_"

    def url_for(self, name: str) -> str:
        """``admin_url`` with its database replaced by ``name``."""
        if "://" in self.admin_url:
            base, _, query = self.admin_url.partition("?")
            base = re.sub(r"/[^/]*$", f"/{name}", base)
            return f"{base}?{query}" if query else base
        return f"{self.admin_url} dbname={name}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def create(self) -> tuple[str, str]:
        """A new empty database: (name, url)."""
        name = f"{self._prefix}{next(self._names)}"
        self._admin(f"CREATE DATABASE {name}")
        return name, self.url_for(name)

    def drop(self, name: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    @contextmanager
    def database(self) -> Iterator[str]:
        """The URL of a fresh database, dropped when the block ends."""
        name, url = self.create()
        try:
            yield url
        finally:
            self.drop(name)


_cluster: PgCluster | None = None
_failure: str | None = None


def _start() -> PgCluster:
    url = os.environ.get("SEMMEM_TEST_DATABASE_URL")
    if url:
        cluster = PgCluster(url)
        cluster._admin("CREATE EXTENSION IF NOT EXISTS vector")
        return cluster
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (CI containers)
        warnings.simplefilter("ignore")
        import pgserver

        folder = tempfile.mkdtemp(prefix="semmem-pg-")  # short: unix socket paths are limited
        os.chmod(folder, 0o777)  # as root, PostgreSQL runs as the 'pgserver' user
        # registered before pgserver registers its own exit hook, so it runs after it:
        # pgserver stops the server and deletes its data, then the folder goes
        atexit.register(shutil.rmtree, folder, True)
        server = pgserver.get_server(os.path.join(folder, "data"), cleanup_mode="delete")
    cluster = PgCluster(server.get_uri())
    # new databases are copied from template1: pgvector is installed there once
    cluster._admin("CREATE EXTENSION IF NOT EXISTS vector")
    import psycopg

    with psycopg.connect(cluster.url_for("template1"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return cluster


def cluster_or_skip() -> PgCluster:
    """The session's server (started on first use), or skip/fail with the reason."""
    global _cluster, _failure
    if _cluster is None and _failure is None:
        try:
            _cluster = _start()
        except ImportError as exc:
            _failure = f"PostgreSQL tests need pgserver, psycopg and pgvector ({exc})"
        except Exception as exc:  # a server that cannot start: report why
            _failure = f"could not start PostgreSQL with pgserver: {type(exc).__name__}: {exc}"
    if _cluster is None:
        reason = f"{_failure}; pip install 'sem-mem[pg]' pgserver"
        if os.environ.get("SEMMEM_REQUIRE_PG") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return _cluster
