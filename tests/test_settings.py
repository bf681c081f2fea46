"""Settings come from REDDYTALK_* variables, checked, with secrets kept out of repr."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from reddytalk.settings import Settings
from reddytalk.telephony.acs_auth import ACS_OPENID_CONFIG_URL


def test_defaults_are_the_embedded_profile_on_loopback() -> None:
    settings = Settings.from_env({})
    assert (settings.profile, settings.host, settings.port) == ("embedded", "127.0.0.1", 8765)
    assert settings.acs_openid_config_url == ACS_OPENID_CONFIG_URL


def test_call_control_settings_are_read_and_the_secret_is_not_shown() -> None:
    settings = Settings.from_env({
        "REDDYTALK_ACS_CONNECTION_STRING": "endpoint=https://acs.example/;accesskey=c2VjcmV0",
        "REDDYTALK_ACS_RESOURCE_ID": "2f0d0c8e-resource",
        "REDDYTALK_PUBLIC_FUNCTIONS_URL": "https://fn.example",
        "REDDYTALK_PUBLIC_MEDIA_URL": "wss://media.example",
    })  # fmt: skip
    assert settings.acs_resource_id == "2f0d0c8e-resource"
    assert settings.public_media_url == "wss://media.example"
    assert settings.acs_connection_string.endswith("accesskey=c2VjcmV0")
    assert "c2VjcmV0" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [("REDDYTALK_PORT", "http"), ("REDDYTALK_PORT", "70000"), ("REDDYTALK_PROFILE", "staging")],
)
def test_a_bad_value_is_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})


def test_the_key_folder_defaults_to_the_data_folder_and_follows_it() -> None:
    settings = Settings.from_env({"REDDYTALK_DATA_DIR": "/srv/reddytalk"})
    assert settings.phi_key_dir == Path("/srv/reddytalk/keys")
    moved = dataclasses.replace(settings, data_dir=Path("/tmp/demo"))
    assert moved.phi_key_dir == Path("/tmp/demo/keys")

    chosen = Settings.from_env({"REDDYTALK_KEY_DIR": "/etc/reddytalk/keys"})
    assert chosen.phi_key_dir == Path("/etc/reddytalk/keys")
    assert dataclasses.replace(chosen, data_dir=Path("x")).phi_key_dir == chosen.phi_key_dir


def test_admin_api_settings_are_read_and_the_local_token_is_not_shown() -> None:
    assert Settings.from_env({}).admin_token == ""
    settings = Settings.from_env({
        "REDDYTALK_ADMIN_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "REDDYTALK_ADMIN_AUDIENCE": "api://reddytalk-admin",
        "REDDYTALK_ADMIN_OPENID_CONFIG_URL": "http://127.0.0.1:9/openid-configuration",
        "REDDYTALK_ADMIN_TOKEN": "local-admin-token-value",
    })  # fmt: skip
    assert settings.admin_tenant_id == "72f988bf-86f1-41af-91ab-2d7cd011db47"
    assert settings.admin_audience == "api://reddytalk-admin"
    assert settings.admin_openid_config_url == "http://127.0.0.1:9/openid-configuration"
    assert settings.admin_token == "local-admin-token-value"
    assert "local-admin-token-value" not in repr(settings)
