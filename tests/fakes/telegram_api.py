"""A fake of Telegram's Bot API on 127.0.0.1 (getMe, sendMessage, getUpdates, ...), recording every call."""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote

BOT_ID = 7_000_000_001
BLOCKED = "Forbidden: bot was blocked by the user"
CHAT_NOT_FOUND = "Bad Request: chat not found"
BOT_API_DOWNLOAD_LIMIT = 20 * 1024 * 1024


@dataclass(frozen=True)
class RecordedCall:
    """One Bot API call the fake received; `params` as sent (PTB JSON-encodes non-string values)."""

    method: str
    params: dict[str, str]
    status: int

    def json(self, name: str) -> Any:
        """A parameter decoded from JSON (reply_markup, chat_id, ...)."""
        return json.loads(self.params[name])


@dataclass
class PlannedFailure:
    """An error answer the fake gives to the next call of a method."""

    method: str
    status: int
    description: str
    retry_after: int | None = None


@dataclass(frozen=True)
class SentPhoto:
    """A sendPhoto call that succeeded: the chat, the photo as given, its caption, the bytes fetched."""

    chat_id: int
    ref: str
    caption: str
    content: bytes
    message_id: int


@dataclass
class _State:
    calls: list[RecordedCall] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    failures: deque[PlannedFailure] = field(default_factory=deque)
    blocked: set[int] = field(default_factory=set)
    files: dict[str, bytes] = field(default_factory=dict)
    file_paths: dict[str, str] = field(default_factory=dict)
    """file_path → file_id, as getFile handed them out."""
    downloads: list[str] = field(default_factory=list)
    webhook: dict[str, str] | None = None
    commands: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    photos: list[SentPhoto] = field(default_factory=list)
    """language_code ("" for the default) → the command menu set by setMyCommands."""
    changed: threading.Condition = field(default_factory=threading.Condition)
    closing: bool = False


class FakeTelegramApi:
    """A Bot API on loopback for one token: `base_url` goes into TELEGRAM_API_BASE_URL."""

    def __init__(self, token: str, *, username: str = "BurgernetBot", max_poll_s: float = 1.0) -> None:
        self.token = token
        self.username = username
        self.max_poll_s = max_poll_s
        self._state = _State()
        self._ids = itertools.count(1)
        self._update_ids = itertools.count(100_000_001)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits for it, once per test.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    # --- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> FakeTelegramApi:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._state.changed:
            self._state.closing = True
            self._state.changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        """What PTB's `base_url` should be (PTB appends the token and the method)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/bot"

    @property
    def base_file_url(self) -> str:
        """Where files from getFile are downloaded."""
        return self.base_url.removesuffix("/bot") + "/file/bot"

    # --- what tests arrange ----------------------------------------------------------------------
    def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for getUpdates (an update_id is given when it has none)."""
        update = dict(update)
        update.setdefault("update_id", next(self._update_ids))
        with self._state.changed:
            self._state.updates.append(update)
            self._state.changed.notify_all()
        return update

    def fail_next(
        self, method: str, status: int, description: str, *, retry_after: int | None = None
    ) -> None:
        """Answer the next call of `method` with an error."""
        with self._state.changed:
            self._state.failures.append(PlannedFailure(method, status, description, retry_after))

    def block(self, chat_id: int) -> None:
        """From now on, sending to this chat answers 403 "bot was blocked by the user"."""
        with self._state.changed:
            self._state.blocked.add(chat_id)

    def add_file(self, file_id: str, content: bytes, *, file_path: str | None = None) -> None:
        """A file getFile can resolve and the file endpoint serves (a photo at `photos/file_<n>.jpg`)."""
        with self._state.changed:
            self._state.files[file_id] = content
            path = file_path or f"photos/file_{len(self._state.file_paths)}.jpg"
            self._state.file_paths[path] = file_id

    @property
    def downloads(self) -> list[str]:
        """The file paths downloaded so far, in order."""
        with self._state.changed:
            return list(self._state.downloads)

    # --- what tests read -------------------------------------------------------------------------
    @property
    def calls(self) -> list[RecordedCall]:
        """Every call so far, in order."""
        with self._state.changed:
            return list(self._state.calls)

    def calls_to(self, method: str) -> list[RecordedCall]:
        """The calls of one method, in order."""
        return [c for c in self.calls if c.method == method]

    def sent_texts(self, chat_id: int | None = None) -> list[str]:
        """Texts of the successful sendMessage calls (to one chat, when given)."""
        return [
            c.params["text"]
            for c in self.calls_to("sendMessage")
            if c.status == 200 and (chat_id is None or int(c.params["chat_id"]) == chat_id)
        ]

    @property
    def webhook(self) -> dict[str, str] | None:
        """The parameters of the last setWebhook, None after deleteWebhook."""
        with self._state.changed:
            return None if self._state.webhook is None else dict(self._state.webhook)

    def pending_updates(self) -> int:
        """Updates not yet confirmed by a getUpdates offset."""
        with self._state.changed:
            return len(self._state.updates)

    def wait_for(self, method: str, count: int, timeout: float = 5.0) -> list[RecordedCall]:
        """Block (in a worker thread) until `count` calls of `method` were received."""
        deadline = time.monotonic() + timeout
        with self._state.changed:
            while True:
                found = [c for c in self._state.calls if c.method == method]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(found)} of {count} {method} calls")
                self._state.changed.wait(left)

    # --- the API ---------------------------------------------------------------------------------
    def _answer(self, method: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        state = self._state
        with state.changed:
            for failure in state.failures:
                if failure.method == method:
                    state.failures.remove(failure)
                    return _error(failure.status, failure.description, failure.retry_after)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return _error(404, "Not Found")
        result: tuple[int, dict[str, Any]] = handler(params)
        return result

    def _api_getMe(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        return _ok(self._bot_user())

    def _api_logOut(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        return _ok(True)

    def _api_setWebhook(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._state.changed:
            self._state.webhook = dict(params)
        return _ok(True)

    def _api_setMyCommands(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        # The Bot API's rules: at most 100 commands, each 1-32 of a-z, 0-9 and _, a description of 1-256.
        try:
            commands = json.loads(params.get("commands", ""))
        except ValueError:
            return _error(400, "Bad Request: can't parse commands JSON object")
        if not isinstance(commands, list) or len(commands) > 100:
            return _error(400, "Bad Request: too many commands")
        for item in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(item.get("command", ""))):
                return _error(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(item.get("description", ""))) <= 256:
                return _error(400, "Bad Request: command description is empty or too long")
        with self._state.changed:
            self._state.commands[params.get("language_code", "")] = commands
        return _ok(True)

    @property
    def commands(self) -> dict[str, list[dict[str, str]]]:
        """The command menus set so far, by language code ("" is the default menu)."""
        with self._state.changed:
            return dict(self._state.commands)

    def _api_deleteWebhook(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._state.changed:
            self._state.webhook = None
            if params.get("drop_pending_updates") == "true":
                self._state.updates.clear()
        return _ok(True)

    def _api_getWebhookInfo(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        hook = self.webhook or {}
        return _ok({"url": hook.get("url", ""), "has_custom_certificate": False, "pending_update_count": 0})

    def _api_getUpdates(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        offset = int(params.get("offset", "0") or 0)
        limit = int(params.get("limit", "100") or 100)
        wait = min(float(params.get("timeout", "0") or 0), self.max_poll_s)
        deadline = time.monotonic() + wait
        state = self._state
        with state.changed:
            if state.webhook is not None:
                return _error(409, "Conflict: can't use getUpdates method while webhook is active")
            while True:
                # An offset confirms every update before it, as Telegram does.
                state.updates = [u for u in state.updates if u["update_id"] >= offset]
                if state.updates or state.closing:
                    return _ok(state.updates[:limit])
                left = deadline - time.monotonic()
                if left <= 0:
                    return _ok([])
                state.changed.wait(left)

    def _api_sendMessage(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        chat_id = int(params["chat_id"])
        if chat_id in self._state.blocked:
            return _error(403, BLOCKED)
        if chat_id == 0:
            return _error(400, CHAT_NOT_FOUND)
        message = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "from": self._bot_user(),
            "text": params.get("text", ""),
        }
        return _ok(message)

    def _api_sendPhoto(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        # As the Bot API: `photo` is a file id or an HTTP URL Telegram downloads itself; a caption of at
        # most 1024 characters.
        chat_id = int(params["chat_id"])
        if chat_id in self._state.blocked:
            return _error(403, BLOCKED)
        caption = params.get("caption", "")
        if len(caption) > 1024:
            return _error(400, "Bad Request: message caption is too long")
        ref = params.get("photo", "")
        content = b""
        if ref.startswith(("http://", "https://")):
            try:
                with urllib.request.urlopen(ref, timeout=5) as answer:  # noqa: S310 (loopback only)
                    kind = answer.headers.get("Content-Type", "")
                    content = answer.read()
            except (urllib.error.URLError, OSError):
                return _error(400, "Bad Request: failed to get HTTP URL content")
            if not kind.startswith("image/"):
                return _error(400, "Bad Request: wrong type of the web page content")
        message_id = next(self._ids)
        with self._state.changed:
            self._state.photos.append(SentPhoto(chat_id, ref, caption, content, message_id))
            self._state.changed.notify_all()
        photo = [{"file_id": f"photo-{message_id}", "file_unique_id": "u", "width": 90, "height": 90}]
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "photo": photo,
        }
        if caption:
            message["caption"] = caption
        return _ok(message)

    @property
    def photos(self) -> list[SentPhoto]:
        """The photos sent so far, in order, with what the URL gave when the fake fetched it."""
        with self._state.changed:
            return list(self._state.photos)

    def _api_answerCallbackQuery(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        return _ok(True)

    def _api_getFile(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        # As the Bot API documents it: a File with file_path, valid for an hour, under /file/bot<token>/;
        # files over 20 MB are refused ("file is too big").
        file_id = params.get("file_id", "")
        with self._state.changed:
            content = self._state.files.get(file_id)
            path = next((p for p, f in self._state.file_paths.items() if f == file_id), None)
        if content is None or path is None:
            return _error(400, "Bad Request: invalid file_id")
        if len(content) > BOT_API_DOWNLOAD_LIMIT:
            return _error(400, "Bad Request: file is too big")
        return _ok(
            {"file_id": file_id, "file_unique_id": file_id[-8:], "file_size": len(content), "file_path": path}
        )

    def _file(self, path: str) -> bytes | None:
        with self._state.changed:
            self._state.downloads.append(path)
            file_id = self._state.file_paths.get(path)
            return self._state.files.get(file_id) if file_id is not None else None

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Burgernet",
            "username": self.username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _record(self, call: RecordedCall) -> None:
        with self._state.changed:
            self._state.calls.append(call)
            self._state.changed.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _serve(self) -> None:
                file_prefix = f"/file/bot{api.token}/"
                # PTB percent-encodes file URLs (the token's colon becomes %3A).
                path = unquote(self.path)
                if path.startswith(file_prefix):
                    content = api._file(path.removeprefix(file_prefix))
                    if content is None:
                        self._reply(404, b"")
                    else:
                        self._reply(200, content, "application/octet-stream")
                    return
                prefix = f"/bot{api.token}/"
                if not self.path.startswith(prefix):
                    self._reply(401, json.dumps(_error(401, "Unauthorized")[1]).encode())
                    return
                method = self.path.removeprefix(prefix).split("?", 1)[0]
                params = _params(self)
                status, body = api._answer(method, params)
                api._record(RecordedCall(method, params, status))
                self._reply(status, json.dumps(body).encode())

            do_GET = _serve  # noqa: N815
            do_POST = _serve  # noqa: N815

        return Handler


def _params(handler: BaseHTTPRequestHandler) -> dict[str, str]:
    length = int(handler.headers.get("Content-Length") or 0)
    body = handler.rfile.read(length).decode("utf-8") if length else ""
    query = handler.path.split("?", 1)[1] if "?" in handler.path else ""
    params = dict(parse_qsl(query, keep_blank_values=True))
    if handler.headers.get("Content-Type", "").startswith("application/json") and body:
        params.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in json.loads(body).items()})
    else:
        params.update(parse_qsl(body, keep_blank_values=True))
    return params


def _ok(result: Any) -> tuple[int, dict[str, Any]]:
    return 200, {"ok": True, "result": result}


def _error(status: int, description: str, retry_after: int | None = None) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return status, body
