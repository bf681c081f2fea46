"""EnvironmentSecrets: the embedded profile's secrets, from ``REDDYTALK_SECRET_<NAME>``."""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reddytalk.providers.secrets.env import EnvironmentSecrets, variable_for

VALUE = "s3cr3t-Value-of-the-EHR-client"
NAMES = st.from_regex(r"[0-9A-Za-z-]{1,127}", fullmatch=True)


def test_name_maps_to_an_upper_case_prefixed_variable() -> None:
    assert variable_for("ehr-client-secret") == "REDDYTALK_SECRET_EHR_CLIENT_SECRET"
    assert variable_for("Tools-Secret2") == "REDDYTALK_SECRET_TOOLS_SECRET2"


def test_value_comes_from_the_mapping_it_was_given() -> None:
    secrets = EnvironmentSecrets(environ={"REDDYTALK_SECRET_EHR_CLIENT_SECRET": VALUE})

    assert asyncio.run(secrets.get("ehr-client-secret")) == VALUE
    assert asyncio.run(secrets.get("EHR-Client-Secret")) == VALUE  # names ignore case


def test_unset_or_empty_is_none() -> None:
    secrets = EnvironmentSecrets(environ={"REDDYTALK_SECRET_BLANK": "", "EHR_CLIENT_SECRET": VALUE})

    assert asyncio.run(secrets.get("blank")) is None
    assert asyncio.run(secrets.get("ehr-client-secret")) is None  # only the prefixed variable


@pytest.mark.parametrize("name", ["", "under_score", "a/b", "dot.ted", "x" * 128, "ünï"])
def test_names_key_vault_would_refuse_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        asyncio.run(EnvironmentSecrets(environ={}).get(name))


@given(NAMES, NAMES)
def test_two_names_share_a_variable_only_if_they_are_the_same_name(a: str, b: str) -> None:
    assert (variable_for(a) == variable_for(b)) == (a.lower() == b.lower())


def test_values_never_reach_logs_or_repr(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = EnvironmentSecrets(environ={"REDDYTALK_SECRET_TOOLS_SECRET": VALUE})

    assert asyncio.run(secrets.get("tools-secret")) == VALUE
    asyncio.run(secrets.close())

    assert VALUE not in caplog.text
    assert VALUE not in repr(secrets)
