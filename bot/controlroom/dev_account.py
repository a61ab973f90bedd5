"""A control-room admin made on the first development start, so a newcomer can log in at once."""

from __future__ import annotations

import secrets

from sqlmodel import select

from bot.clock import utcnow
from bot.config import Settings
from storage.db import make_engine, session_factory, transaction
from storage.models import Operator, OperatorRole
from storage.operators import create_operator
from storage.participants import audit

DEV_ADMIN = "admin"
PASSWORD_FILE = "controlroom-admin.txt"


def ensure_development_admin(settings: Settings) -> tuple[str, str | None]:
    """The development admin's name and password; the password is None when accounts exist already.

    The password is kept beside the development data key (never in production, which refuses to run
    without real settings), so later starts can show it again.
    """
    if settings.environment != "development":
        raise RuntimeError("a development account is only made in development")
    kept = settings.data_key_file.parent / PASSWORD_FILE
    engine = make_engine(settings.database.url)
    try:
        with transaction(session_factory(engine)) as session:
            accounts = session.exec(select(Operator.username)).all()
            if accounts:
                if DEV_ADMIN in accounts and kept.exists():
                    return DEV_ADMIN, kept.read_text().strip()
                return DEV_ADMIN, None
            password = secrets.token_urlsafe(12)
            now = utcnow()
            create_operator(session, username=DEV_ADMIN, password=password, role=OperatorRole.ADMIN, now=now)
            audit(
                session,
                now=now,
                actor="serve",
                event="controlroom.operator_created",
                subject=f"operator:{DEV_ADMIN}",
                detail={"role": OperatorRole.ADMIN.value, "development": True},
            )
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_text(password + "\n")
            kept.chmod(0o600)
            return DEV_ADMIN, password
    finally:
        engine.dispose()
