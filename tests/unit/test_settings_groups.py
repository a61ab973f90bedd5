"""The grouped settings read the environment variables as before; each channel and action type has its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ENVIRONMENTS, load_settings
from bot.dispatch import rate_for, template_for
from storage.models import ActionType, DeliveryKind
from storage.vocabulary import ChannelKind


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment without the names these tests set, away from any `.env`."""
    monkeypatch.chdir(tmp_path)
    for kind in ChannelKind:
        monkeypatch.delenv(f"DISPATCH_RATE_{kind.value.upper()}", raising=False)
    for action_type in ActionType:
        monkeypatch.delenv(f"WHATSAPP_TEMPLATE_{action_type.value.upper()}", raising=False)
    for name in (
        *("WHATSAPP_TEMPLATE_DEFAULT", "WHATSAPP_TEMPLATE_CLOSING", "WHATSAPP_TEMPLATE_RELAY"),
        *("WHATSAPP_TEMPLATE_UPDATE", "WHATSAPP_TEMPLATE_CORRECTION"),
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DISPATCH_RATE_LIMITS", raising=False)
    return monkeypatch


def test_every_channel_reads_its_own_rate_variable(env: pytest.MonkeyPatch) -> None:
    """DISPATCH_RATE_<CHANNEL> lands in `dispatch.rates[channel]`, one distinct value per channel."""
    wanted = {kind: 1.5 + n for n, kind in enumerate(ChannelKind)}
    for kind, rate in wanted.items():
        env.setenv(f"DISPATCH_RATE_{kind.value.upper()}", str(rate))
    settings = load_settings()
    assert dict(settings.dispatch.rates) == wanted
    assert {kind: rate_for(settings, kind) for kind in ChannelKind} == wanted


def test_rate_limits_off_means_no_rate(env: pytest.MonkeyPatch) -> None:
    env.setenv("DISPATCH_RATE_LIMITS", "false")
    env.setenv("DISPATCH_RATE_SMS", "3")
    settings = load_settings()
    assert settings.dispatch.rates[ChannelKind.SMS] == 3.0
    assert rate_for(settings, ChannelKind.SMS) == 0.0


def test_every_action_type_reads_its_own_template_variable(env: pytest.MonkeyPatch) -> None:
    """WHATSAPP_TEMPLATE_<ACTION_TYPE> lands in `whatsapp_templates.for_action[action_type]`."""
    wanted = {action_type: f"HX{action_type.value}" for action_type in ActionType}
    for action_type, sid in wanted.items():
        env.setenv(f"WHATSAPP_TEMPLATE_{action_type.value.upper()}", sid)
    settings = load_settings()
    assert dict(settings.whatsapp_templates.for_action) == wanted
    for action_type, sid in wanted.items():
        assert template_for(settings, action_type, DeliveryKind.ALERT) == sid


def test_templates_fall_back_to_the_default(env: pytest.MonkeyPatch) -> None:
    env.setenv("WHATSAPP_TEMPLATE_DEFAULT", "HXdefault")
    env.setenv("WHATSAPP_TEMPLATE_ROBBERY", "HXrobbery")
    env.setenv("WHATSAPP_TEMPLATE_RELAY", "HXrelay")
    settings = load_settings()
    assert template_for(settings, ActionType.ROBBERY, DeliveryKind.ALERT) == "HXrobbery"
    assert template_for(settings, ActionType.BURGLARY, DeliveryKind.ALERT) == "HXdefault"
    assert template_for(settings, ActionType.BURGLARY, DeliveryKind.RELAY_ALERT) == "HXrelay"
    assert template_for(settings, ActionType.ROBBERY, DeliveryKind.CLOSING) == "HXdefault"


def test_update_and_correction_templates_read_their_variables(env: pytest.MonkeyPatch) -> None:
    """WHATSAPP_TEMPLATE_UPDATE and WHATSAPP_TEMPLATE_CORRECTION (README) land in their group's fields."""
    env.setenv("WHATSAPP_TEMPLATE_DEFAULT", "HXdefault")
    settings = load_settings()
    assert (settings.whatsapp_templates.update, settings.whatsapp_templates.correction) == (None, None)
    assert template_for(settings, ActionType.ROBBERY, DeliveryKind.UPDATE) == "HXdefault"
    env.setenv("WHATSAPP_TEMPLATE_UPDATE", "HXupdate")
    env.setenv("WHATSAPP_TEMPLATE_CORRECTION", "HXcorrection")
    settings = load_settings()
    assert (settings.whatsapp_templates.update, settings.whatsapp_templates.correction) == (
        "HXupdate",
        "HXcorrection",
    )
    assert template_for(settings, ActionType.ROBBERY, DeliveryKind.UPDATE) == "HXupdate"
    assert template_for(settings, ActionType.ROBBERY, DeliveryKind.CANCEL) == "HXcorrection"


def test_groups_read_the_documented_variable_names(env: pytest.MonkeyPatch) -> None:
    """The names in README and docs/production.md still set the values the groups show."""
    env.setenv("TWILIO_AUTH_TOKEN", "twilio-token")
    env.setenv("TWILIO_SMS_FROM", "+3197010000001")
    env.setenv("HTTP_PORT", "9123")
    env.setenv("TELEGRAM_BOT_USERNAME", "TestBot")
    env.setenv("SCHEDULER_ENABLED", "false")
    env.setenv("CONTROLROOM_PHONE", "+31201234567")
    settings = load_settings()
    assert settings.twilio.auth_token == "twilio-token"
    assert settings.twilio.sms_from == "+3197010000001"
    assert settings.http.port == 9123
    assert settings.telegram.bot_username == "TestBot"
    assert settings.scheduler.enabled is False
    assert settings.controlroom.phone == "+31201234567"


def test_flat_overrides_and_later_changes_show_in_the_groups(env: pytest.MonkeyPatch) -> None:
    """`load_settings(twilio_auth_token=…)` keeps working, and a changed field is seen by its group."""
    settings = load_settings(twilio_auth_token="override", dispatch_rate_voice=0.25)
    assert settings.twilio.auth_token == "override"
    assert settings.dispatch.rates[ChannelKind.VOICE] == 0.25
    settings.http_port = 9999
    assert settings.http.port == 9999


def test_the_groups_stay_out_of_the_listed_settings(env: pytest.MonkeyPatch) -> None:
    """The admin page lists `model_dump()`: environment names only, no group shown twice or unmasked."""
    dumped = load_settings(twilio_auth_token="secret").model_dump()
    assert "twilio_auth_token" in dumped
    assert (
        not {"twilio", "http", "dispatch", "whatsapp_templates", "scheduler", "controlroom"} & dumped.keys()
    )


# Production needs its secrets; tests/unit/test_preflight.py reads it in any case.
@pytest.mark.parametrize("name", [n for n in ENVIRONMENTS if n != "production"])
def test_environment_names_are_read_in_any_case(env: pytest.MonkeyPatch, name: str) -> None:
    env.setenv("ENVIRONMENT", name.upper())
    assert load_settings().environment == name


def test_an_unknown_environment_is_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("ENVIRONMENT", "staging")
    with pytest.raises(ValueError, match="not an environment"):
        load_settings()
