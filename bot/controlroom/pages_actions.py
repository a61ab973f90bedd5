"""Actions: list, new-action form, preview, launch, the live page of an action, close."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from bot.controlroom.auth import ActionVisitor
from bot.controlroom.deps import render

router = APIRouter()


@router.get("/actions", response_class=HTMLResponse)
async def actions(request: Request, visitor: ActionVisitor) -> HTMLResponse:
    """Every action, active first."""
    return render(request, "figures.html", lang=visitor.language, visitor=visitor, section="actions")


@router.get("/actions/new", response_class=HTMLResponse)
async def new_action(request: Request, visitor: ActionVisitor) -> HTMLResponse:
    """The new-action form."""
    return render(request, "figures.html", lang=visitor.language, visitor=visitor, section="actions")
