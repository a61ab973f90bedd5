"""A control-room receiver for the bot's tip webhook that checks what the bot signs.

Standard library only, so it runs wherever the control room does. Every POST carries:

    X-Signature-256:        sha256=<hex HMAC-SHA256(secret, "<timestamp>.<delivery id>.<body>")>
    X-Signature-Timestamp:  the Unix time (seconds) the bot signed this try at
    X-Burgernet-Delivery:   the delivery id: the same for every try of one tip version
    X-Burgernet-Event:      tip.created or tip.updated

`verify` accepts a request only when the signature matches (compared in constant time), the timestamp
is within five minutes of our clock, and the delivery id was not accepted before. Run it as

    CONTROLROOM_WEBHOOK_SECRET=... python docs/webhook_receiver.py 8099

A repeat of an accepted delivery is answered 200 without handling it again: the bot sends a delivery
once more when it did not see our 2xx, and a 200 stops it retrying. A bad signature or a stale time is
answered 403. tests/tips/test_webhook_receiver.py runs `verify` on real deliveries of the bot.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_S = 300


class Rejected(Exception):
    """A request that must not be handled: its signature, its time, or its delivery id is wrong."""


class BadSignature(Rejected):
    """The signature is missing or does not match the secret, the timestamp, the id and the body."""


class Stale(Rejected):
    """The timestamp is further from our clock than the tolerance: a captured request replayed late."""


class Replayed(Rejected):
    """This delivery id was accepted before."""


class SeenDeliveries:
    """The delivery ids accepted within the tolerance; older ones are refused as stale anyway.

    In memory for the example. A receiver that must handle each tip version exactly once across its
    own restarts keeps these ids in its database instead.
    """

    def __init__(self, tolerance_s: int = TOLERANCE_S) -> None:
        self._tolerance_s = tolerance_s
        self._seen: dict[str, float] = {}

    def add(self, delivery: str, now: float) -> bool:
        """Remember a delivery id; False when it was already there."""
        self._seen = {d: at for d, at in self._seen.items() if now - at <= 2 * self._tolerance_s}
        if delivery in self._seen:
            return False
        self._seen[delivery] = now
        return True


def expected_signature(secret: str, timestamp: str, delivery: str, body: bytes) -> str:
    """The signature the bot sends for these values."""
    signed = f"{timestamp}.{delivery}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify(
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret: str,
    seen: SeenDeliveries,
    now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> str:
    """Check one webhook request; returns its delivery id, or raises a `Rejected`."""
    lower = {k.lower(): v for k, v in headers.items()}
    given = lower.get("x-signature-256", "")
    timestamp = lower.get("x-signature-timestamp", "")
    delivery = lower.get("x-burgernet-delivery", "")
    if not (given and timestamp.isdigit() and delivery):
        raise BadSignature("a signature header is missing")
    # Signature first: an unsigned request learns nothing about our clock or the ids we saw.
    if not hmac.compare_digest(given, expected_signature(secret, timestamp, delivery, body)):
        raise BadSignature("the signature does not match")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance_s:
        raise Stale(f"signed {int(now - int(timestamp))} s from now")
    if not seen.add(delivery, now):
        raise Replayed(delivery)
    return delivery


def handle_tip(event: str, tip: dict[str, object]) -> None:
    """What the control room does with a tip; here: print it."""
    print(event, json.dumps(tip, ensure_ascii=False), flush=True)


def serve(port: int, secret: str) -> None:
    """Listen on 127.0.0.1:port until interrupted."""
    seen = SeenDeliveries()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                verify(dict(self.headers.items()), body, secret=secret, seen=seen)
            except Replayed:
                self.send_response(200)  # seen before: acknowledge, do not handle twice
            except Rejected as exc:
                self.log_message("refused: %s", exc)
                self.send_response(403)
            else:
                handle_tip(self.headers.get("X-Burgernet-Event", ""), json.loads(body))
                self.send_response(204)
            self.end_headers()

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 8099, os.environ["CONTROLROOM_WEBHOOK_SECRET"])
