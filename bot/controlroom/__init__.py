"""The control room: the operators' web app (login, actions, live tips, figures, audit log)."""

from bot.controlroom.router import controlroom_router

__all__ = ["controlroom_router"]
