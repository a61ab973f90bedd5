"""`serve`'s app factory keeps the start-up heap out of later garbage collections (bot/asgi.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from storage.crypto import new_data_key
from storage.db import migrate

PROBE = """
import gc
from bot.asgi import app_from_environment
before = gc.get_freeze_count()
app_from_environment()
print(before, gc.get_freeze_count())
"""


def test_the_served_app_freezes_what_start_up_built(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'heap.db'}"
    migrate(url)  # `serve` migrates in the parent before the factory runs
    env = os.environ | {
        "DATABASE_URL": url,
        "DATA_KEY": new_data_key(),
        "API_TOKEN": "heap-test-token-123456",
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    before, after = (int(n) for n in done.stdout.split()[-2:])
    assert before == 0
    assert after > 10_000  # the NLU model, the catalogues and the ORM's mappings, at least
