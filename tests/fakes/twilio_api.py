"""A local fake of Twilio's REST API (Messages.json, Calls.json) on 127.0.0.1, recording every request.

It also serves the files of inbound messages as Twilio does: the webhook's `MediaUrlN`
(`https://api.twilio.com/2010-04-01/Accounts/AC…/Messages/MM…/Media/ME…`) answers only with HTTP basic
auth, then redirects (307) to a short-lived URL on Twilio's CDN that serves the bytes without auth.
With `TWILIO_API_BASE_URL` pointed here, both hosts reach this fake.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

API_VERSION = "2010-04-01"
RESOURCE = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-fA-F]{32})/(?P<kind>Messages|Calls)\.json$")
MEDIA = re.compile(
    r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-fA-F]{32})/Messages/(?P<message>MM[0-9a-f]{32})/Media/(?P<media>ME[0-9a-f]{32})$"
)
CDN = re.compile(r"^/cdn/(?P<token>[0-9a-f]{32})$")
CDN_HOST = "mms.twiliocdn.com"
ERROR_DOCS = "https://www.twilio.com/docs/errors/{code}"
ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    21205: "Url parameter is required.",
    21211: "Invalid 'To' Phone Number",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    63016: "Failed to send freeform message because you are outside the allowed window.",
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, with its form decoded."""

    method: str
    path: str
    form: dict[str, str]
    authorized: bool
    status: int
    """The HTTP status the fake answered (0: it closed the connection without an answer)."""
    sid: str | None = None
    """The sid of the message or call created, when one was."""
    credentials_sent: bool = False
    """Whether the request carried an Authorization header at all (right or wrong)."""
    at: float = field(default_factory=time.monotonic)
    """When the fake answered it (`time.monotonic()`), to measure the rate it was sent at."""

    @property
    def kind(self) -> str:
        """`Messages`, `Calls`, `Media` (a message's file), `CDN` (its signed copy) or `other`."""
        match = RESOURCE.match(self.path)
        if match:
            return match["kind"]
        if MEDIA.match(self.path):
            return "Media"
        return "CDN" if CDN.match(self.path) else "other"


@dataclass(frozen=True)
class StoredFile:
    """A file of an inbound message; `redirect`: `https` (Twilio's way), `http` (a bad CDN), `none`."""

    content: bytes
    content_type: str
    redirect: str = "https"


@dataclass
class PlannedFailure:
    """An answer the fake gives instead of success, for the next requests."""

    status: int
    code: int | None
    retry_after: float | None = None
    body: str | None = None


@dataclass
class TransportFault:
    """A request the fake never answers: the connection is closed, at once or after `stall_s` seconds."""

    stall_s: float = 0.0


@dataclass
class _State:
    requests: list[RecordedRequest] = field(default_factory=list)
    failures: deque[PlannedFailure] = field(default_factory=deque)
    faults: deque[TransportFault] = field(default_factory=deque)
    opted_out: set[str] = field(default_factory=set)
    files: dict[str, StoredFile] = field(default_factory=dict)
    """Media sid → file; the CDN token of a file is its media sid's hex digits."""
    lock: threading.Lock = field(default_factory=threading.Lock)


class _QuietServer(ThreadingHTTPServer):
    """A client that went away (a killed dispatcher, a time-out) is no error worth a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def new_sid(prefix: str) -> str:
    """A Twilio-shaped sid: two letters and 32 hex digits."""
    return prefix + uuid.uuid4().hex


def _error_body(status: int, code: int | None) -> str:
    if code is None:
        return json.dumps({"status": status, "message": HTTPStatus(status).phrase})
    return json.dumps(
        {
            "code": code,
            "message": ERROR_MESSAGES.get(code, "Error"),
            "more_info": ERROR_DOCS.format(code=code),
            "status": status,
        }
    )


class FakeTwilioApi:
    """Twilio's REST API for `Messages.json` and `Calls.json`; `fail_next` makes it answer errors."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> str:
        """Serve on a free loopback port; returns the base URL to give TWILIO_API_BASE_URL."""
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-twilio", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeTwilioApi:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>` while serving."""
        if self._server is None:
            raise RuntimeError("fake Twilio API is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # --- what tests control and read ------------------------------------------------------------
    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 429,
        code: int | None = None,
        retry_after: float | None = None,
        body: str | None = None,
    ) -> None:
        """Answer the next `count` requests with this error (e.g. 429, 400 + code 21610, 500)."""
        with self._state.lock:
            for _ in range(count):
                self._state.failures.append(PlannedFailure(status, code, retry_after, body))

    def drop_next(self, count: int = 1, *, stall_s: float = 0.0) -> None:
        """Close the next `count` connections without an answer (after `stall_s`: a client time-out).

        The message is not accepted: the provider lost it, so a retry must deliver it once.
        """
        with self._state.lock:
            self._state.faults.extend(TransportFault(stall_s) for _ in range(count))

    def pending_faults(self) -> int:
        """Planned errors and transport faults not used yet."""
        with self._state.lock:
            return len(self._state.failures) + len(self._state.faults)

    def accepted(self) -> int:
        """How many messages and calls were accepted (2xx) so far."""
        with self._state.lock:
            return sum(1 for r in self._state.requests if 200 <= r.status < 300)

    def _take_fault(self, method: str, path: str, form: dict[str, str]) -> TransportFault | None:
        with self._state.lock:
            if not self._state.faults or RESOURCE.match(path) is None:
                return None
            fault = self._state.faults.popleft()
            self._state.requests.append(RecordedRequest(method, path, form, True, 0))
            return fault

    def add_media(
        self,
        content: bytes,
        content_type: str = "image/jpeg",
        *,
        message_sid: str | None = None,
        redirect: str = "https",
    ) -> str:
        """A file of an inbound message; returns its `MediaUrlN` as the webhook carries it."""
        media_sid = new_sid("ME")
        with self._state.lock:
            self._state.files[media_sid] = StoredFile(content, content_type, redirect)
        message = message_sid or new_sid("MM")
        return f"https://api.twilio.com/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message}/Media/{media_sid}"

    def media_requests(self) -> list[RecordedRequest]:
        """The requests for files (their API URL and their CDN copy), oldest first."""
        return [r for r in self.requests if r.kind in ("Media", "CDN")]

    def serve_file(self, path: str, authorization: str | None) -> tuple[int, dict[str, str], bytes] | None:
        """A file request's answer (None: not a file path); records the request."""
        api, cdn = MEDIA.match(path), CDN.match(path)
        if api is None and cdn is None:
            return None
        authorized = self._authorized(authorization)
        status, headers, body = self._file_answer(api, cdn, authorized)
        with self._state.lock:
            self._state.requests.append(
                RecordedRequest(
                    "GET", path, {}, authorized, status, credentials_sent=authorization is not None
                )
            )
        return status, headers, body

    def _file_answer(
        self, api: re.Match[str] | None, cdn: re.Match[str] | None, authorized: bool
    ) -> tuple[int, dict[str, str], bytes]:
        json_type = {"Content-Type": "application/json; charset=utf-8"}
        if api is not None:
            # Media URLs answer only to the account's own credentials (HTTP basic auth).
            if not authorized or api["sid"] != self.account_sid:
                return 401, json_type, _error_body(401, 20003).encode()
            with self._state.lock:
                stored = self._state.files.get(api["media"])
            if stored is None:
                return 404, json_type, _error_body(404, 20404).encode()
            if stored.redirect == "none":
                return 200, {"Content-Type": stored.content_type}, stored.content
            location = f"{stored.redirect}://{CDN_HOST}/cdn/{api['media'][2:]}"
            return 307, {"Location": location}, b""
        assert cdn is not None
        with self._state.lock:
            stored = self._state.files.get("ME" + cdn["token"])
        if stored is None:
            return 404, {"Content-Type": "application/xml"}, b"<Error><Code>NoSuchKey</Code></Error>"
        return 200, {"Content-Type": stored.content_type}, stored.content

    def opt_out(self, number: str) -> None:
        """Make every later message to this number fail with 21610, as after the person texted STOP."""
        with self._state.lock:
            self._state.opted_out.add(number.removeprefix("whatsapp:"))

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    def messages(self) -> list[dict[str, str]]:
        """The forms of the messages accepted (2xx) so far."""
        return [r.form for r in self.requests if r.kind == "Messages" and 200 <= r.status < 300]

    def message_times(self) -> list[float]:
        """When each accepted message arrived (`time.monotonic()`), oldest first."""
        return sorted(r.at for r in self.requests if r.kind == "Messages" and 200 <= r.status < 300)

    def calls(self) -> list[dict[str, str]]:
        """The forms of the calls accepted (2xx) so far."""
        return [r.form for r in self.requests if r.kind == "Calls" and 200 <= r.status < 300]

    def clear(self) -> None:
        """Forget the requests recorded so far."""
        with self._state.lock:
            self._state.requests.clear()

    # --- serving --------------------------------------------------------------------------------
    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except ValueError:
            return False
        return user == self.account_sid and password == self.auth_token

    def answer(
        self, method: str, path: str, form: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, str], str]:
        """The status, headers and body Twilio would give; records the request."""
        authorized = self._authorized(authorization)
        status, headers, body = self._decide(method, path, form, authorized)
        sid = json.loads(body).get("sid") if status < 300 else None
        with self._state.lock:
            self._state.requests.append(RecordedRequest(method, path, form, authorized, status, sid))
        return status, headers, body

    def _decide(
        self, method: str, path: str, form: dict[str, str], authorized: bool
    ) -> tuple[int, dict[str, str], str]:
        match = RESOURCE.match(path)
        if method != "POST" or match is None:
            return 404, {}, _error_body(404, 20404)
        if not authorized or match["sid"] != self.account_sid:
            return 401, {}, _error_body(401, 20003)
        with self._state.lock:
            failure = self._state.failures.popleft() if self._state.failures else None
            opted_out = form.get("To", "").removeprefix("whatsapp:") in self._state.opted_out
        if failure is not None:
            headers = {"Retry-After": f"{failure.retry_after:g}"} if failure.retry_after is not None else {}
            return failure.status, headers, failure.body or _error_body(failure.status, failure.code)
        kind = match["kind"]
        missing = self._missing(kind, form)
        if missing is not None:
            return 400, {}, _error_body(400, missing)
        if kind == "Messages" and opted_out:
            return 400, {}, _error_body(400, 21610)
        resource = self._message(form) if kind == "Messages" else self._call(form)
        return 201, {}, json.dumps(resource)

    @staticmethod
    def _missing(kind: str, form: dict[str, str]) -> int | None:
        if not form.get("To"):
            return 21604
        if kind == "Messages":
            if not form.get("From") and not form.get("MessagingServiceSid"):
                return 21603
            if not (form.get("Body") or form.get("MediaUrl") or form.get("ContentSid")):
                return 21602
            return None
        if not form.get("From"):
            return 21603
        if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
            return 21205
        return None

    def _common(self, sid: str, kind: str) -> dict[str, Any]:
        now = format_datetime(datetime.now(UTC))
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "date_created": now,
            "date_updated": now,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/{kind}/{sid}.json",
        }

    def _message(self, form: dict[str, str]) -> dict[str, Any]:
        sid = new_sid("SM")
        return self._common(sid, "Messages") | {
            "body": form.get("Body", ""),
            "date_sent": None,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "1" if form.get("MediaUrl") else "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "status": "accepted" if form.get("MessagingServiceSid") else "queued",
            "subresource_uris": {
                "media": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}/Media.json"
            },
            "to": form.get("To"),
        }

    def _call(self, form: dict[str, str]) -> dict[str, Any]:
        sid = new_sid("CA")
        return self._common(sid, "Calls") | {
            "answered_by": None,
            "caller_name": None,
            "direction": "outbound-api",
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": form.get("From"),
            "from_formatted": form.get("From"),
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "start_time": None,
            "status": "queued",
            "to": form.get("To"),
            "to_formatted": form.get("To"),
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8") if length else ""
                form = dict(parse_qsl(raw, keep_blank_values=True))
                path = self.path.split("?", 1)[0]
                fault = fake._take_fault(self.command, path, form)
                if fault is not None:
                    if fault.stall_s:
                        time.sleep(fault.stall_s)
                    # No answer at all: the client sees a dropped connection (or its time-out first).
                    self.close_connection = True
                    return
                served = fake.serve_file(path, self.headers.get("Authorization"))
                if served is not None:
                    self._send_file(*served)
                    return
                status, headers, body = fake.answer(
                    self.command, path, form, self.headers.get("Authorization")
                )
                data = body.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _send_file(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_POST = _serve  # noqa: N815 (the name http.server looks up)
            do_GET = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return  # keep test output quiet

        return Handler
