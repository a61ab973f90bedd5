"""Engine and sessions; SQLite gets WAL, foreign keys and a busy timeout. Nothing is built at import.

On SQLite, `transaction` also takes an in-process lock per database file. SQLite lets one writer in at a
time, and a connection that finds the file locked sleeps in steps of up to 100 ms before it looks again:
under load, the writers of one process spent more time asleep than the lock was held (bench/README.md).
Waiting on a Python lock instead wakes the next writer the moment the last one is
done. Other processes (the command line, a second `serve`) still meet SQLite's own busy timeout.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, create_engine

from storage.reach import keep_reach

SessionFactory = Callable[[], Session]
_AFTER_COMMIT = "after_commit_calls"
SQLITE_LOCK_WAIT_S = 30.0  # the default wait for a lock, both our writer lock and SQLite's busy timeout
_writer_locks: dict[str, threading.RLock] = {}
_writer_locks_guard = threading.Lock()
_lock_waits: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()


def is_sqlite(url: str) -> bool:
    """Whether a database URL points at SQLite."""
    return url.startswith("sqlite")


def make_engine(url: str, *, echo: bool = False, lock_wait_s: float | None = None) -> Engine:
    """Build the engine for a database URL, creating the SQLite file's folder when needed.

    `lock_wait_s` is how long a statement waits for a lock before it fails: on SQLite 30 s when unset, on
    PostgreSQL the server's own `lock_timeout` when unset.
    """
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        wait_s = SQLITE_LOCK_WAIT_S if lock_wait_s is None else lock_wait_s
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": wait_s})
        event.listen(engine, "connect", _sqlite_pragmas(wait_s))
        _lock_waits[engine] = wait_s
        return engine
    connect_args = {} if lock_wait_s is None else {"options": f"-c lock_timeout={int(lock_wait_s * 1000)}"}
    return create_engine(
        url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args
    )


def _sqlite_pragmas(wait_s: float) -> Callable[[Any, Any], None]:
    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(wait_s * 1000)}")
        cursor.close()

    return pragmas


def session_factory(engine: Engine) -> SessionFactory:
    """A callable that opens a new session on the engine; its flushes keep the reach table in step."""
    maker = sessionmaker(engine, class_=Session, expire_on_commit=False)
    keep_reach(maker)
    return maker


def after_commit(session: Session, call: Callable[[], None]) -> None:
    """Run `call` once the session's transaction has committed (never when it rolls back)."""
    calls: list[Callable[[], None]] = session.info.setdefault(_AFTER_COMMIT, [])
    if call not in calls:
        calls.append(call)


@event.listens_for(OrmSession, "after_commit")
def _run_after_commit(session: Session) -> None:
    # One listener on the class instead of one per session: listening on a session costs as much as a
    # query, and every tip asked for it.
    for call in session.info.pop(_AFTER_COMMIT, ()):
        call()


@event.listens_for(OrmSession, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


@contextmanager
def transaction(factory: SessionFactory) -> Iterator[Session]:
    """One unit of work: commit when the block ends, roll back when it raises."""
    session = factory()
    try:
        with writer_turn(session.get_bind()):
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
    finally:
        session.close()


@contextmanager
def writer_turn(bind: Engine | Connection) -> Iterator[None]:
    """Wait for this process's turn to write to a SQLite file (nothing to wait for on PostgreSQL)."""
    lock = writer_lock(bind)
    if lock is None:
        yield
        return
    if not lock.acquire(timeout=_lock_waits.get(bind.engine, SQLITE_LOCK_WAIT_S)):
        raise OperationalError("BEGIN", None, sqlite3.OperationalError("database is locked"))
    try:
        yield
    finally:
        lock.release()


def writer_lock(bind: Engine | Connection) -> threading.RLock | None:
    """This process's lock for writing to a SQLite file (None on PostgreSQL); `writer_turn` takes it."""
    # Re-entrant: a transaction opened inside another one on the same thread must not wait for itself.
    if bind.dialect.name != "sqlite":
        return None
    path = str(bind.engine.url.database or "")
    if path in ("", ":memory:"):
        path = f":memory:{id(bind.engine)}"
    with _writer_locks_guard:
        return _writer_locks.setdefault(path, threading.RLock())


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database schema to `revision` with alembic."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Take the database schema back to `revision`."""
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def alembic_config(url: str) -> Any:
    """The alembic configuration for our migrations folder and a database URL."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg
