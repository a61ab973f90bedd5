"""The app factory uvicorn imports in each worker process (`run_bot.py serve`)."""

from __future__ import annotations

import gc
import logging

from fastapi import FastAPI

from bot.app import create_app
from bot.config import load_settings
from bot.public.my_data_export import ExportTokenRedaction
from bot.runtime import build_runtime


def app_from_environment() -> FastAPI:
    """The whole system from the environment's settings (migrations ran in the parent process)."""
    app = create_app(build_runtime(load_settings(), run_migrations=False))
    # The access log would hold the one-time links of MIJN GEGEVENS EXPORT, readable before their use.
    logging.getLogger("uvicorn.access").addFilter(ExportTokenRedaction())
    freeze_startup_heap()
    return app


def freeze_startup_heap() -> None:
    """Keep what start-up built (NLU model, catalogues, ORM mappings) out of every later collection.

    A full collection walks every tracked object, and these never die: no request moves while it runs
    (figures in bench/README.md). Collect first, so that no garbage is kept for good.
    """
    gc.collect()
    gc.freeze()
