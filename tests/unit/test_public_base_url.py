"""The public base URL follows the HTTP port unless it is set: moving the port alone keeps links working."""

from __future__ import annotations

import pytest

from bot.config import load_settings


def test_without_a_public_url_the_links_point_at_this_machine_on_its_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    assert load_settings(http_port=8090).public_base_url == "http://127.0.0.1:8090"
    assert load_settings(http_host="0.0.0.0", http_port=81).public_base_url == "http://127.0.0.1:81"
    assert load_settings(http_host="::1", http_port=82).public_base_url == "http://[::1]:82"


def test_a_public_url_that_is_set_is_kept_whatever_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://tips.example.nl")
    assert load_settings(http_port=8090).public_base_url == "https://tips.example.nl"


def test_production_still_refuses_the_derived_http_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="https:// PUBLIC_BASE_URL"):
        load_settings(
            environment="production",
            data_key="k",
            api_token="Zq8-vN2_pL5xR7wT1yB4mK9cJ6hF3dS0",
            simulator=False,
        )
