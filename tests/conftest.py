"""Shared fixtures: a fresh database per test (SQLite, or PostgreSQL when DATABASE_URL says so)."""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from storage.crypto import DataVault, new_data_key
from storage.db import SessionFactory, make_engine, migrate, session_factory
from storage.geo import SHIPPED_POSTCODE_DATA, PostcodeBook

POSTGRES_ENV = "DATABASE_URL"


_READS_DATABASE_URL: dict[Path, bool] = {}


BROWSER_TESTS = Path(__file__).parent / "browser"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the PostgreSQL run, only the tests that touch a database; the others ran on the SQLite run.

    A test touches one when it asks for `database_url` or `postgres_url` (directly or through another
    fixture), or when its file reads DATABASE_URL itself (command-line and multi-process tests). The
    browser tests run once, on SQLite: they check what a person sees and does, and the pages' queries run
    on PostgreSQL in tests/controlroom.
    """
    if not os.environ.get(POSTGRES_ENV, "").startswith("postgresql"):
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        path = item.path
        if path not in _READS_DATABASE_URL:
            _READS_DATABASE_URL[path] = POSTGRES_ENV in path.read_text(encoding="utf-8")
        fixtures = set(getattr(item, "fixturenames", ()))
        touches = bool({"database_url", "postgres_url"} & fixtures) or _READS_DATABASE_URL[path]
        (keep if touches and BROWSER_TESTS not in path.parents else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# Each test gets its own database, copied from one migrated once per test session (per server, per
# xdist worker): running the migrations for every test cost more than most tests themselves. With fsync
# off, FILE_COPY is the quicker way to copy a small database.
_TEMPLATES: dict[str, str] = {}


def _migrated_template(base_url: str) -> str:
    """The name of a migrated database on the server of `base_url`, made on first use."""
    if base_url not in _TEMPLATES:
        name = f"tpl_{uuid.uuid4().hex[:12]}"
        admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        migrate(base_url.rsplit("/", 1)[0] + f"/{name}")
        _TEMPLATES[base_url] = name
    return _TEMPLATES[base_url]


@pytest.fixture(scope="session", autouse=True)
def _drop_templates() -> Iterator[None]:
    """The migrated templates go when the run (or this worker) ends."""
    yield
    for base_url, name in _TEMPLATES.items():
        admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    _TEMPLATES.clear()


def _fresh_postgres_database(base_url: str) -> Iterator[str]:
    """A new, migrated database on the server of `base_url`, dropped afterwards."""
    template = _migrated_template(base_url)
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY'))
    url = base_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head, for the tests to copy."""
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    migrate(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:  # everything in the main file, nothing left in a WAL beside it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated database: PostgreSQL when DATABASE_URL is a postgres URL, else SQLite in tmp."""
    base = os.environ.get(POSTGRES_ENV, "")
    if base.startswith("postgresql"):
        yield from _fresh_postgres_database(base)
        return
    target = tmp_path / "test.db"
    shutil.copyfile(request.getfixturevalue("_migrated_sqlite"), target)
    yield f"sqlite:///{target}"


@pytest.fixture
def sessions(database_url: str) -> Iterator[SessionFactory]:
    """A session factory on the test's own database."""
    engine = make_engine(database_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def book() -> PostcodeBook:
    """The real PC4 table, the copy shipped in the repository."""
    return PostcodeBook.load(SHIPPED_POSTCODE_DATA)


@pytest.fixture
def vault() -> DataVault:
    """A vault with a fresh random key."""
    return DataVault(new_data_key())


class FixedClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move the clock forward by a timedelta's keyword arguments."""
        from datetime import timedelta

        self.now = self.now + timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    """Friday 2026-11-20 15:30 Amsterdam time (14:30 UTC)."""
    return FixedClock(datetime(2026, 11, 20, 14, 30, tzinfo=UTC))


# Several processes on one PostgreSQL (leadership, shared outbox) need a server even in the SQLite run.


def _postgres_base() -> str | None:
    for name in ("DATABASE_URL", "TEST_POSTGRES_URL"):
        url = os.environ.get(name, "")
        if url.startswith("postgresql"):
            return url
    script = Path(__file__).resolve().parents[1] / "scripts" / "pg_test_server.sh"
    if shutil.which("bash") and list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        # The workers of one run start the same server: one at a time, the others find it running.
        with open(Path(tempfile.gettempdir()) / "burgernet-pg-start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip().startswith("postgresql"):
            return done.stdout.strip().splitlines()[-1]
    return None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database; fails in CI without one, skips elsewhere."""
    base = _postgres_base()
    if base is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs PostgreSQL for the multi-process tests (DATABASE_URL or initdb)")
        pytest.skip("no PostgreSQL here (set DATABASE_URL or install postgresql)")
    yield from _fresh_postgres_database(base)


@pytest.fixture(autouse=True)
def _sse_not_shutting_down() -> Iterator[None]:
    """Each test starts with sse-starlette's process-wide shutdown flag down.

    sse-starlette keeps its shutdown watch per process and thread (a flag, uvicorn's exit handler, one
    watcher task per thread); tests start and stop many servers and event loops in one process.
    """
    import signal

    from sse_starlette import sse

    def reset() -> None:
        sse.AppStatus.should_exit = False
        # A watcher task left on a closed event loop, or a stopped in-process server whose exit handler is
        # still installed, would otherwise end (or never watch) the next test's streams.
        sse._thread_state.shutdown_state = None
        handler = signal.getsignal(signal.SIGTERM)
        if getattr(getattr(handler, "__self__", None), "should_exit", False):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    reset()
    yield
    reset()
