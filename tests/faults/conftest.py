"""The fault tests' PostgreSQL: DATABASE_URL when it is one, else a throw-away server on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.db import migrate
from tests.conftest import _fresh_postgres_database

ROOT = Path(__file__).resolve().parents[2]


def _postgres_base() -> str | None:
    for name in ("DATABASE_URL", "TEST_POSTGRES_URL"):
        url = os.environ.get(name, "")
        if url.startswith("postgresql"):
            return url
    script = ROOT / "scripts" / "pg_test_server.sh"
    if shutil.which("bash") and list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        done = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip().startswith("postgresql"):
            return done.stdout.strip().splitlines()[-1]
    return None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database; fails in CI (CI=true) without one, skips elsewhere."""
    base = _postgres_base()
    if base is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs PostgreSQL for the two-dispatcher test (DATABASE_URL or initdb)")
        pytest.skip("no PostgreSQL here (set DATABASE_URL or install postgresql)")
    for url in _fresh_postgres_database(base):
        migrate(url)
        yield url
