"""The app factory uvicorn imports in each worker process (`run_bot.py serve`)."""

from __future__ import annotations

from fastapi import FastAPI

from bot.app import create_app
from bot.config import load_settings
from bot.runtime import build_runtime


def app_from_environment() -> FastAPI:
    """The whole system from the environment's settings (migrations ran in the parent process)."""
    return create_app(build_runtime(load_settings(), run_migrations=False))
