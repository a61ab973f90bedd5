"""MIJN GEGEVENS: everything we store about the person (AVG art. 15), the phone number masked."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from bot.flows.address import address_lines
from bot.flows.engine import FlowContext
from bot.flows.relay import relay_summary
from bot.messages import OutgoingMessage
from storage.participants import audit, identities_of
from storage.phones import mask_phone


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
        *groups,
    ]
