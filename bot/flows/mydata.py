"""MIJN GEGEVENS: everything we store about the person (AVG art. 15), the phone number masked."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.flows.address import address_lines
from bot.flows.engine import FlowContext
from bot.flows.follow import area_list, show_follower_data
from bot.flows.preferences import describe_preferences
from bot.flows.relay import relay_summary
from bot.messages import OutgoingMessage
from storage.areas import followed_areas_of, is_area_only
from storage.data_exports import (
    EXPORT_VALID,
    EXPORTS_PER_DAY,
    ExportRefused,
    received_alerts,
    request_export,
    sent_tips,
)
from storage.models import Participant
from storage.participants import audit, identities_of
from storage.phones import mask_phone
from storage.preferences import preferences_of
from storage.vocabulary import ChannelKind

# In a chat the lists are shown, newest first, up to this many each; the export holds everything.
MAX_LINES = 10
MAX_TIP_TEXT = 120


def set_exercises(ctx: FlowContext, *, on: bool) -> list[OutgoingMessage]:
    """OEFENINGEN AAN/UIT: whether exercise alerts reach the person (never counted in the figures)."""
    participant = ctx.participant
    if participant is None:
        return [ctx.say("exercises.not_registered")]
    if participant.exercises != on:
        participant.exercises = on
        ctx.session.add(participant)
        audit(
            ctx.session,
            now=ctx.now,
            actor=f"identity:{ctx.identity.id}",
            event="exercises_on" if on else "exercises_off",
            subject=f"participant:{participant.id}",
        )
    return [ctx.say("exercises.turned_on" if on else "exercises.turned_off")]


def show_my_data(ctx: FlowContext) -> list[OutgoingMessage]:
    """The person's data in one message, and an audit record that they asked."""
    participant = ctx.participant
    groups = relay_summary(ctx)  # the neighbourhood groups the person coordinates
    if participant is None:
        return groups or [ctx.say("mydata.none", channel=ctx.t(f"channels.{ctx.message.channel.value}"))]
    following = followed_areas_of(ctx.session, participant=participant)
    if is_area_only(participant):
        audit(
            ctx.session,
            now=ctx.now,
            actor=f"identity:{ctx.identity.id}",
            event="personal_data_shown",
            subject=f"participant:{participant.id}",
            detail={"channel": ctx.message.channel.value},
        )
        return [show_follower_data(ctx), *groups, history(ctx, participant)]
    areas = [ctx.say("mydata.followed_areas", areas=area_list(ctx))] if following else []
    vault = ctx.services.vault
    name = vault.decrypt(participant.name_enc) if participant.name_enc else ctx.t("mydata.no_name")
    phone = mask_phone(vault.decrypt(participant.phone_enc)) if participant.phone_enc else "-"
    linked = identities_of(ctx.session, participant=participant)
    channels = sorted({ctx.t(f"channels.{i.channel.value}") for i in linked})
    preferred = (
        ctx.t(f"channels.{participant.preferred_channel.value}") if participant.preferred_channel else "-"
    )
    consent_date = "-"
    if participant.consent_at is not None:
        local = participant.consent_at.astimezone(ZoneInfo(ctx.services.settings.timezone))
        consent_date = f"{local:%d-%m-%Y}"
    audit(
        ctx.session,
        now=ctx.now,
        actor=f"identity:{ctx.identity.id}",
        event="personal_data_shown",
        subject=f"participant:{participant.id}",
        detail={"channel": ctx.message.channel.value},
    )
    return [
        ctx.say(
            "mydata.summary",
            name=name,
            phone=phone,
            addresses=address_lines(ctx, participant),
            preferred=preferred,
            channels=", ".join(channels),
            version=participant.consent_version or "-",
            consent_date=consent_date,
            exercises=ctx.t("mydata.exercises_on" if participant.exercises else "mydata.exercises_off"),
        ),
        *areas,
        *groups,
        history(ctx, participant),
    ]


def _date(ctx: FlowContext, moment: datetime) -> str:
    return f"{moment.astimezone(ZoneInfo(ctx.services.settings.timezone)):%d-%m-%Y}"


def _lines(ctx: FlowContext, lines: list[str]) -> str:
    if not lines:
        return ctx.t("mydata.none_line")
    shown = lines[:MAX_LINES]
    if len(lines) > MAX_LINES:
        shown.append(ctx.t("mydata.more_lines", count=len(lines) - MAX_LINES))
    return "\n".join(shown)


def history(ctx: FlowContext, participant: Participant) -> OutgoingMessage:
    """The alerts the person got in the last twelve months, their tips and their preferences.

    By SMS only the counts (a list would cost many parts); in a chat the lists themselves.
    """
    alerts = received_alerts(ctx.session, participant=participant, now=ctx.now)
    tips = sent_tips(ctx.session, participant=participant)
    if ctx.message.channel is ChannelKind.SMS:
        return ctx.say("mydata.history_sms", alerts=len(alerts), tips=len(tips))
    skipped, quiet = describe_preferences(
        ctx, preferences_of(ctx.session, participant_id=participant.id or 0)
    )
    alert_lines = [
        ctx.t("mydata.alert_line", date=_date(ctx, a.at), code=a.code, type=ctx.t(f"action.type.{a.type}"))
        for a in alerts
    ]
    tip_lines = []
    for tip in tips:
        text = " ".join(tip.text.split())
        if len(text) > MAX_TIP_TEXT:
            text = text[: MAX_TIP_TEXT - 3].rstrip() + "..."
        tip_lines.append(ctx.t("mydata.tip_line", date=_date(ctx, tip.at), code=tip.code, text=text))
    return ctx.say(
        "mydata.history_chat",
        alerts=len(alerts),
        alert_lines=_lines(ctx, alert_lines),
        tips=len(tips),
        tip_lines=_lines(ctx, tip_lines),
        skipped=skipped,
        quiet=quiet,
    )


def request_my_data_export(ctx: FlowContext) -> list[OutgoingMessage]:
    """MIJN GEGEVENS EXPORT: a link that gives the person's data as a JSON file, once, for a day."""
    participant = ctx.participant
    if participant is None:
        return [ctx.say("mydata.none", channel=ctx.t(f"channels.{ctx.message.channel.value}"))]
    try:
        token = request_export(ctx.session, vault=ctx.services.vault, participant=participant, now=ctx.now)
    except ExportRefused:
        return [ctx.say("mydata.export_limit", max=EXPORTS_PER_DAY)]
    url = f"{ctx.services.settings.public_base_url.rstrip('/')}/mijn-gegevens/{token}"
    return [ctx.say("mydata.export_link", url=url, hours=int(EXPORT_VALID.total_seconds() // 3600))]
