"""Figures: participants per municipality and channel, actions per month and their results."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from bot.controlroom.auth import AnyVisitor
from bot.controlroom.deps import render

router = APIRouter()


@router.get("/figures", response_class=HTMLResponse)
async def figures(request: Request, visitor: AnyVisitor) -> HTMLResponse:
    """The figures page."""
    return render(request, "figures.html", lang=visitor.language, visitor=visitor, section="figures")
