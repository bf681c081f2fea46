"""Per-call tokens for the tools API."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reddytalk.calls.call_tokens import CallGrant, CallTokens
from reddytalk.errors import Unauthorized

SECRET = b"s" * 32
NOW = dt.datetime.now(dt.UTC)


def test_a_token_grants_its_call_and_clinic() -> None:
    tokens = CallTokens(secret=SECRET)
    token = tokens.issue(call_id="call-1", clinic_id="clinic-1", now=NOW)
    assert tokens.verify(f"Bearer {token}") == CallGrant("call-1", "clinic-1")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing header"),
        ("", "missing header"),
        ("Basic abc", "not bearer"),
        ("Bearer ", "not bearer"),
        ("Bearer not-a-jwt", "invalid call token"),
    ],
)
def test_malformed_headers_are_refused(header: str | None, reason: str) -> None:
    with pytest.raises(Unauthorized, match=reason):
        CallTokens(secret=SECRET).verify(header)


def test_an_expired_token_is_refused() -> None:
    tokens = CallTokens(secret=SECRET, lifetime=dt.timedelta(minutes=1))
    token = tokens.issue(call_id="c", clinic_id="k", now=NOW - dt.timedelta(hours=1))
    with pytest.raises(Unauthorized, match="expired"):
        tokens.verify(f"Bearer {token}")


def test_a_token_of_another_secret_or_audience_or_algorithm_is_refused() -> None:
    other = CallTokens(secret=b"o" * 32).issue(call_id="c", clinic_id="k", now=NOW)
    exp = int((NOW + dt.timedelta(hours=1)).timestamp())
    wrong_audience = jwt.encode({"aud": "x", "sub": "c", "clinic": "k", "exp": exp}, SECRET)
    unsigned = jwt.encode({"aud": "reddytalk-tools", "sub": "c", "clinic": "k", "exp": exp},
                          None, algorithm="none")  # fmt: skip
    for token in (other, wrong_audience, unsigned):
        with pytest.raises(Unauthorized):
            CallTokens(secret=SECRET).verify(f"Bearer {token}")


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        CallTokens(secret=b"short")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_any_header_is_granted_or_refused_cleanly(header: str) -> None:
    try:
        CallTokens(secret=SECRET).verify(header)
    except Unauthorized:
        pass


GRANT = CallGrant("call-1", "clinic-1")


def test_a_patient_token_names_its_patient() -> None:
    tokens = CallTokens(secret=SECRET)
    token = tokens.issue_for_patient(grant=GRANT, patient_id="pat_1", now=NOW)
    assert tokens.verify_patient(token, grant=GRANT) == "pat_1"


@pytest.mark.parametrize(
    "grant",
    [
        pytest.param(CallGrant("call-2", "clinic-1"), id="other-call"),
        pytest.param(CallGrant("call-1", "clinic-2"), id="other-clinic"),
    ],
)
def test_a_patient_token_of_another_call_is_refused(grant: CallGrant) -> None:
    tokens = CallTokens(secret=SECRET)
    token = tokens.issue_for_patient(grant=GRANT, patient_id="pat_1", now=NOW)
    with pytest.raises(Unauthorized, match="another call"):
        tokens.verify_patient(token, grant=grant)


def test_an_expired_patient_token_is_refused() -> None:
    tokens = CallTokens(secret=SECRET, lifetime=dt.timedelta(minutes=1))
    old = tokens.issue_for_patient(grant=GRANT, patient_id="pat_1", now=NOW - dt.timedelta(hours=1))
    with pytest.raises(Unauthorized, match="expired"):
        tokens.verify_patient(old, grant=GRANT)


def test_a_patient_token_of_another_secret_is_refused() -> None:
    other = CallTokens(secret=b"o" * 32).issue_for_patient(grant=GRANT, patient_id="p", now=NOW)
    with pytest.raises(Unauthorized, match="invalid"):
        CallTokens(secret=SECRET).verify_patient(other, grant=GRANT)


def test_call_and_patient_tokens_are_not_interchangeable() -> None:
    tokens = CallTokens(secret=SECRET)
    call_token = tokens.issue(call_id=GRANT.call_id, clinic_id=GRANT.clinic_id, now=NOW)
    patient_token = tokens.issue_for_patient(grant=GRANT, patient_id="pat_1", now=NOW)

    with pytest.raises(Unauthorized):
        tokens.verify_patient(call_token, grant=GRANT)
    with pytest.raises(Unauthorized):
        tokens.verify(f"Bearer {patient_token}")


@pytest.mark.parametrize("token", [None, "", 42, b"bytes", ["a.b.c"], "not-a-jwt"])
def test_a_missing_or_malformed_patient_token_is_refused(token: object) -> None:
    with pytest.raises(Unauthorized):
        CallTokens(secret=SECRET).verify_patient(token, grant=GRANT)


def test_a_patient_token_without_a_string_subject_is_refused() -> None:
    exp = int((NOW + dt.timedelta(hours=1)).timestamp())
    claims = {"aud": "reddytalk-patient", "sub": 7, "call": "call-1", "clinic": "clinic-1"}
    forged = jwt.encode({**claims, "exp": exp}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        CallTokens(secret=SECRET).verify_patient(forged, grant=GRANT)
