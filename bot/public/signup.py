"""The public sign-up page `/aanmelden`: a form, the code sent to the number, then on to the chat app.

For people recruited online. Form (postcode, house number, mobile number, channel, consent) → the
number proves itself with the same code a number typed in a chat gets (storage/verifications.py, sent
by the dispatcher) → the person is stored as the chat registration stores one, and continues in their
app: SMS needs nothing more, WhatsApp gets a wa.me link with MIJN GEGEVENS, Telegram a one-time deep link that
binds the chat.

Forged posts: a signed double-submit token. A random value in an HttpOnly, SameSite=Strict cookie, and
in the form a hidden field `<expiry>.<HMAC(lookup key, cookie value, expiry)>`. Another site can neither
read the field nor set the cookie, so it cannot post a form in a visitor's name; no server-side session
is needed, nothing is stored before a valid post, and the page works without JavaScript. (An HMAC'd
field alone would not do: anyone may fetch a fresh one and plant it in their own page.)

Automated sign-ups: forms and codes per client address (TRUSTED_PROXIES decides what that is), the
verification's limits per number and for the installation, and a honeypot field that people never see;
a filled honeypot gets the code page as if all went well, and nothing is stored or sent.

The answers are the same whether a number is registered, unknown or opted out (its code is withheld,
so it never verifies): the page cannot be used to probe numbers.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from bot.config import Settings
from bot.http_guards import client_address
from bot.public.action_page import page_language
from bot.texts import LANGUAGES, Catalogue
from storage.crypto import DataVault
from storage.db import SessionFactory, after_commit, transaction
from storage.geo import InvalidHouseNumber, InvalidPostcode, PostcodeBook, UnknownPostcode, parse_address
from storage.models import ChannelIdentity
from storage.participants import NewAddress, Registration, is_opted_out, register_participant
from storage.phones import InvalidPhoneNumber, mask_phone, parse_mobile
from storage.signups import (
    DONE,
    FAILED,
    SignupLimits,
    SignupNotFound,
    client_hash,
    end_signup,
    new_link,
    number_identity,
    open_signup,
    recent_signups,
    signup_data,
    start_signup,
)
from storage.verifications import CODE_DIGITS, CodeCheck, CodeLimits, CodeRefused, check_code, request_code
from storage.vocabulary import ChannelKind

TEMPLATES = Path(__file__).parent / "templates"
STYLESHEET = Path(__file__).parent / "static" / "signup.css"
PATH = "/aanmelden"
# No script, no inline style, nothing from elsewhere; the form posts only to us.
SIGNUP_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": SIGNUP_CSP,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
CSRF_COOKIE = "signup_csrf"
CSRF_SECONDS = 2 * 3600
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{32,64}")
HONEYPOT = "website"
CHANNELS = (ChannelKind.SMS, ChannelKind.WHATSAPP, ChannelKind.TELEGRAM)
NL_ONLY = (ChannelKind.SMS, ChannelKind.WHATSAPP)
MAX_FIELD = 80
FIELDS = ("postcode", "house_number", "addition", "phone", "channel", "consent")


@dataclass
class Page:
    """What one answer shows: the step, the form's values and errors (field → text key), and the rest."""

    step: str
    status: int = 200
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def signup_router(
    *,
    sessions: SessionFactory,
    vault: DataVault,
    settings: Settings,
    catalogue: Catalogue,
    book: PostcodeBook,
    clock: Callable[[], datetime],
    on_code_queued: Callable[[], None] | None = None,
) -> APIRouter:
    """GET/POST `/aanmelden` (the form), POST `/aanmelden/code` (the code), and the page's stylesheet."""
    router = APIRouter(tags=["public"])
    templates = Jinja2Templates(directory=str(TEMPLATES))
    code_limits = CodeLimits(
        valid_minutes=settings.verification_code_minutes,
        max_tries=settings.verification_max_tries,
        per_number=settings.verification_per_number,
        per_sender=settings.verification_per_sender,
        overall=settings.verification_per_hour,
    )
    limits = SignupLimits(
        per_address=settings.signup_per_address,
        codes_per_address=settings.verification_per_sender,
        link_minutes=settings.signup_link_minutes,
    )

    # -- the double-submit token ---------------------------------------------------------------
    def csrf_field(cookie: str) -> str:
        expires = int(clock().timestamp()) + CSRF_SECONDS
        return f"{expires}.{vault.lookup_hash(f'signup-csrf:{cookie}:{expires}')}"

    def csrf_ok(request: Request, form: FormData) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        expires, _, mac = str(form.get("csrf", "")).partition(".")
        if not _COOKIE_VALUE.fullmatch(cookie) or not expires.isdigit() or not mac:
            return False
        if int(expires) <= clock().timestamp():
            return False
        return hmac.compare_digest(vault.lookup_hash(f"signup-csrf:{cookie}:{expires}"), mac)

    def render(request: Request, lang: str, page: Page) -> HTMLResponse:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not _COOKIE_VALUE.fullmatch(cookie):
            cookie = secrets.token_urlsafe(32)

        def t(key: str, **params: object) -> str:
            return catalogue.render(lang, f"signup.{key}", **params)

        context: dict[str, Any] = {
            "lang": lang,
            "t": t,
            "channel_name": lambda c: catalogue.render(lang, f"channels.{c}"),
            "step": page.step,
            "values": page.values,
            "errors": page.errors,
            "csrf": csrf_field(cookie),
            "channels": [c.value for c in CHANNELS],
            "other_lang": "en" if lang == "nl" else "nl",
            "privacy_url": settings.privacy_url(lang),
            "path": PATH,
            "honeypot": HONEYPOT,
            **page.extra,
        }
        response = templates.TemplateResponse(
            request, "signup.html", context, status_code=page.status, headers=PAGE_HEADERS
        )
        response.set_cookie(
            CSRF_COOKIE,
            cookie,
            max_age=CSRF_SECONDS,
            path=PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    # -- the form ------------------------------------------------------------------------------
    def read_form(form: FormData) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
        values = {name: str(form.get(name, ""))[:MAX_FIELD].strip() for name in FIELDS}
        errors: dict[str, str] = {}
        found: dict[str, Any] = {}
        postcode, number = values["postcode"], values["house_number"]
        if not postcode:
            errors["postcode"] = "postcode_missing"
        if not number:
            errors["house_number"] = "house_number_missing"
        if postcode and number:
            addition = values["addition"]
            try:
                parsed = parse_address(f"{postcode} {number}{'-' + addition if addition else ''}")
                place = book.lookup(parsed.postcode)
            except InvalidPostcode:
                errors["postcode"] = "postcode_invalid"
            except InvalidHouseNumber:
                errors["house_number"] = "house_number_invalid"
            except UnknownPostcode:
                errors["postcode"] = "postcode_unknown"
            else:
                found["address"] = {
                    "postcode": parsed.postcode,
                    "house_number": parsed.house_number,
                    "addition": parsed.addition,
                    "lat": place.lat,
                    "lon": place.lon,
                    "municipality_code": place.municipality_code,
                    "municipality_name": place.municipality_name,
                    "place": place.place,
                }
        elif postcode:
            try:
                book.lookup(parse_address(f"{postcode} 1").postcode)
            except InvalidPostcode:
                errors["postcode"] = "postcode_invalid"
            except UnknownPostcode:
                errors["postcode"] = "postcode_unknown"
        channel = next((c for c in CHANNELS if c.value == values["channel"]), None)
        if channel is None:
            errors["channel"] = "channel_missing"
        if not values["phone"]:
            errors["phone"] = "phone_missing"
        else:
            try:
                phone = parse_mobile(values["phone"])
            except InvalidPhoneNumber as exc:
                errors["phone"] = f"phone_{exc.reason}"
            else:
                if channel in NL_ONLY and not phone.startswith("+316"):
                    errors["phone"] = "phone_not_nl"
                found["phone"] = phone
        if values["consent"] != "yes":
            errors["consent"] = "consent_missing"
        found["channel"] = channel
        # In the form's order, so the summary reads as the page does.
        return values, {name: errors[name] for name in FIELDS if name in errors}, found

    def submit(request: Request, form: FormData, lang: str) -> Page:
        if not csrf_ok(request, form):
            return Page("refused", 403, extra={"reason": "csrf"})
        values, errors, found = read_form(form)
        if str(form.get(HONEYPOT, "")):
            # Filled in by a program that fills in everything: it hears what a person would.
            phone = found.get("phone")
            return code_page(secrets.token_urlsafe(24), phone, found.get("channel") or ChannelKind.SMS)
        if errors:
            return Page("form", 400, values, errors)
        now = clock()
        channel: ChannelKind = found["channel"]
        phone = found["phone"]
        by = ChannelKind.WHATSAPP if channel is ChannelKind.WHATSAPP else ChannelKind.SMS
        with transaction(sessions) as session:
            client = client_hash(vault=vault, address=client_address(request))
            forms, codes = recent_signups(session, client=client, now=now, limits=limits)
            if forms >= limits.per_address or codes >= limits.codes_per_address:
                return Page("refused", 429, extra={"reason": "limited"})
            data = {
                "phone": phone,
                "channel": channel.value,
                "address": found["address"],
                "language": lang,
                "consent_at": now.isoformat(),
            }
            signup, ref = start_signup(session, vault=vault, client=client, data=data, now=now, limits=limits)
            identity = number_identity(session, vault=vault, channel=by, phone=phone, now=now, language=lang)
            assert identity.id is not None
            try:
                row = request_code(
                    session,
                    vault=vault,
                    phone=phone,
                    channel=by,
                    requester_id=identity.id,
                    compose=lambda code: catalogue.render(lang, "registration.code_message", code=code),
                    now=now,
                    limits=code_limits,
                )
            except CodeRefused:
                # Kept (without the answers) so that it counts against the address's forms.
                end_signup(session, signup=signup, state=FAILED)
                return Page("refused", 429, extra={"reason": "limited"})
            signup.verification_id = row.id
            signup.requester_id = identity.id
            session.add(signup)
            if on_code_queued is not None:
                after_commit(session, on_code_queued)
        return code_page(ref, phone, channel)

    def code_page(ref: str, phone: str | None, channel: ChannelKind, *, error: str | None = None) -> Page:
        by = ChannelKind.WHATSAPP if channel is ChannelKind.WHATSAPP else ChannelKind.SMS
        return Page(
            "code",
            400 if error else 200,
            errors={"code": error} if error else {},
            extra={
                "ref": ref,
                # Kept on one line: a number broken after "+31" reads as two.
                "phone": (mask_phone(phone) if phone else "****").replace(" ", "\u00a0"),
                "code_channel": by.value,
                "minutes": settings.verification_code_minutes,
                "channel": channel.value,
            },
        )

    # -- the code ------------------------------------------------------------------------------
    def verify(request: Request, form: FormData, lang: str) -> Page:
        if not csrf_ok(request, form):
            return Page("refused", 403, extra={"reason": "csrf"})
        ref = str(form.get("ref", ""))[:MAX_FIELD]
        typed = "".join(str(form.get("code", ""))[:MAX_FIELD].split())
        now = clock()
        with transaction(sessions) as session:
            try:
                signup = open_signup(session, vault=vault, ref=ref, now=now)
            except SignupNotFound:
                return Page("refused", 410, extra={"reason": "expired"})
            data = signup_data(vault=vault, signup=signup)
            channel = ChannelKind(data["channel"])
            if not (typed.isascii() and typed.isdigit() and len(typed) == CODE_DIGITS):
                # A slip (five digits, a letter) is no guess at the code: it uses no try.
                return code_page(ref, data["phone"], channel, error="code_not_digits")
            if signup.verification_id is None or signup.requester_id is None:
                return Page("refused", 410, extra={"reason": "expired"})
            result = check_code(
                session,
                vault=vault,
                verification_id=signup.verification_id,
                requester_id=signup.requester_id,
                code=typed,
                now=now,
                limits=code_limits,
            )
            identity = session.get(ChannelIdentity, signup.requester_id)
            if result is CodeCheck.VERIFIED and (
                identity is None
                or identity.opted_out
                or is_opted_out(session, phone_hash=identity.address_hash)
            ):
                # STOP arrived while the code was on its way: only a message from the number lifts it.
                result = CodeCheck.WRONG
            if result is CodeCheck.WRONG:
                return code_page(ref, data["phone"], channel, error="code_wrong")
            if result is not CodeCheck.VERIFIED:
                end_signup(session, signup=signup, state=FAILED)
                return Page("refused", 410, extra={"reason": f"code_{result.value}"})
            assert identity is not None
            identity.verified = True  # the code proved the number
            address = data["address"]
            registration = Registration(
                name=None,
                phone=data["phone"],
                address=NewAddress(**address),
                preferred_channel=channel,
                consent_version=settings.privacy_statement_version,
                consent_at=datetime.fromisoformat(data["consent_at"]),
                language=data["language"],
            )
            participant, _created = register_participant(
                session, vault=vault, identity=identity, registration=registration, now=now
            )
            end_signup(session, signup=signup, state=DONE, participant_id=participant.id)
            extra: dict[str, Any] = {"channel": channel.value, "place": address["place"]}
            if channel is ChannelKind.TELEGRAM:
                token = new_link(session, vault=vault, signup=signup, now=now, limits=limits)
                extra["link"] = f"https://t.me/{settings.telegram.bot_username}?start={token}"
                extra["link_minutes"] = limits.link_minutes
            elif channel is ChannelKind.WHATSAPP and settings.twilio.whatsapp_from:
                number = settings.twilio.whatsapp_from.removeprefix("whatsapp:").lstrip("+")
                # MIJN GEGEVENS opens the chat with what we keep; START would ask to register again.
                prefill = catalogue.render(data["language"], "signup.whatsapp_prefill")
                extra["link"] = f"https://wa.me/{number}?{urlencode({'text': prefill}, quote_via=quote)}"
        return Page("done", extra=extra)

    # -- the routes ----------------------------------------------------------------------------
    def posted_language(form: FormData) -> str:
        lang = str(form.get("lang", ""))
        return lang if lang in LANGUAGES else "nl"

    @router.get(PATH, response_class=HTMLResponse)
    async def signup_form(request: Request, lang: str | None = None) -> HTMLResponse:
        """The form: postcode, house number, mobile number, channel, consent."""
        return render(request, page_language(request, (lang or "")[:5]), Page("form"))

    @router.post(PATH, response_class=HTMLResponse)
    async def signup_post(request: Request) -> HTMLResponse:
        """The form sent: errors, or the code page (a code is on its way to the number)."""
        form = await request.form(max_files=0, max_fields=20)
        lang = posted_language(form)
        page = await asyncio.to_thread(submit, request, form, lang)
        return render(request, lang, page)

    @router.post(f"{PATH}/code", response_class=HTMLResponse)
    async def signup_code(request: Request) -> HTMLResponse:
        """The code typed: registered (and how to go on in the app), or what went wrong."""
        form = await request.form(max_files=0, max_fields=20)
        lang = posted_language(form)
        page = await asyncio.to_thread(verify, request, form, lang)
        return render(request, lang, page)

    @router.get(f"{PATH}/signup.css", include_in_schema=False)
    async def stylesheet() -> Response:
        """The page's stylesheet (a file, so the policy needs no inline style)."""
        return Response(
            STYLESHEET.read_bytes(),
            media_type="text/css",
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    return router
