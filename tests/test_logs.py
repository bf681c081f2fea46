"""Log redaction: PHI-shaped text and the names a call learnt never reach a handler."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from reddytalk.logs import bind_call, install_redaction, redact, remember_phi


@pytest.fixture
def redacting() -> Iterator[None]:
    factory = logging.getLogRecordFactory()
    install_redaction()
    yield
    logging.setLogRecordFactory(factory)


def test_phi_shaped_text_is_redacted() -> None:
    line = redact("call from +1 (555) 555-0123, born 1980-03-15 or 3/15/1980, a@b.org")
    assert line == "call from [redacted], born [redacted] or [redacted], [redacted]"


def test_credentials_in_urls_are_redacted() -> None:
    """uvicorn logs a WebSocket's URL as it accepts it; ACS's media URL carries the
    call's tools token (a JWT), which must not reach a log."""
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYWxsLTEifQ.-ub5InJu81wa_vJ2c7sGSqfl_OzfFBXxlxZ"
    line = redact(f'"WebSocket /calls/abc?clinic=reddy&token={jwt}" [accepted]')
    assert line == '"WebSocket /calls/abc?clinic=reddy&token=[redacted]" [accepted]'
    assert redact(f"Authorization: Bearer {jwt}") == "Authorization: Bearer [redacted]"
    assert redact("/cb?code=abc123&state=x") == "/cb?code=[redacted]&state=x"
    assert redact("the clinic reddy-family-clinic answered") == (
        "the clinic reddy-family-clinic answered"
    )


def test_names_the_call_learnt_are_redacted_in_its_own_lines_only() -> None:
    async def call(name: str) -> tuple[str, str]:
        bind_call(call_id=f"c-{name}", clinic_id="k")
        before = redact(f"{name} Taylor asked")

        async def tool() -> None:  # a child task learns the name
            remember_phi(f"{name} Taylor")

        await asyncio.create_task(tool())
        await asyncio.sleep(0.01)  # both calls have learnt their names by now
        return before, redact(f"{name.upper()} taylor asked about Taylorsville, not Robert")

    async def main() -> list[tuple[str, str]]:
        return await asyncio.gather(call("Robert"), call("Emily"))

    (before, after), (_, other) = asyncio.run(main())
    assert before == "Robert Taylor asked"
    # whole words only; Emily's call does not know Robert
    assert after == "[redacted] [redacted] asked about Taylorsville, not [redacted]"
    assert other == "[redacted] [redacted] asked about Taylorsville, not Robert"


def test_outside_a_call_remembering_changes_nothing() -> None:
    asyncio.run(asyncio.to_thread(remember_phi, "Nobody"))
    assert redact("Nobody") == "Nobody"


def test_every_record_is_redacted_when_made(
    redacting: None, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        bind_call(call_id="c1", clinic_id="k")
        remember_phi("Linda Wilson")
        logging.getLogger("any.library").warning("patient %s called from %s", "Linda", "5555550123")

    with caplog.at_level(logging.INFO):
        asyncio.run(main())
    assert [r.getMessage() for r in caplog.records] == ["patient [redacted] called from [redacted]"]
