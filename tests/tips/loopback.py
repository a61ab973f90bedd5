"""A control-room webhook receiver on loopback (a real uvicorn server) that can be down, then back."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.e2e.serving import until_listening


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Received:
    """One POST the receiver got."""

    headers: dict[str, str]
    body: bytes
    answered: int

    def expected_signature(self, secret: str) -> str:
        """The signature the forwarder must have sent for this body, timestamp and delivery id."""
        from bot.tips.forwarder import signature

        timestamp = int(self.headers["x-signature-timestamp"])
        return signature(
            self.body, secret, timestamp=timestamp, delivery=self.headers["x-burgernet-delivery"]
        )


@dataclass
class Receiver:
    """Records every POST; answers 503 while `failing`, and is not listening at all until `start()`."""

    port: int = field(default_factory=free_port)
    failing: bool = False
    posts: list[Received] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        """Where tips are POSTed."""
        return f"http://127.0.0.1:{self.port}/tips"

    def acknowledged(self) -> list[Received]:
        """The POSTs answered 2xx."""
        return [p for p in self.posts if 200 <= p.answered < 300]

    async def _handle(self, request: Request) -> Response:
        answered = 503 if self.failing else 200
        self.posts.append(Received(dict(request.headers), await request.body(), answered))
        self._arrived.set()
        return Response(status_code=answered)

    async def start(self) -> None:
        """Listen on the port."""
        app = Starlette(routes=[Route("/tips", self._handle, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        await until_listening(self._server, self._task)

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None

    async def wait_for(self, count: int) -> None:
        """Until `count` POSTs were acknowledged."""
        while len(self.acknowledged()) < count:
            self._arrived.clear()
            await self._arrived.wait()
