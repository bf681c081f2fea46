"""The media worker verifies the JWT ACS signs on every media WebSocket connect.

The local ACS (``scripts/local_acs.py``) publishes its keys on loopback and signs
tokens as ACS does (24 h for media connections); the worker is configured with
its resource id and OpenID configuration URL, as it would be with the real ACS's.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import websockets
from local_acs import LocalAcs, TlsFiles, make_tls
from receptionist_cli import _receptionist

from media_worker.app import create_app
from reddytalk.providers.seed import DEMO_CLINIC_ID
from reddytalk.settings import Settings

_DAY_S = 24 * 3600


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


def _connect(tls: TlsFiles, tmp_path: Path, token: Callable[[LocalAcs], str | None]) -> int:
    """Connect with the token ``token(acs)`` gives; the HTTP status of the upgrade."""

    async def main() -> int:
        async with LocalAcs(tls) as acs:
            settings = Settings(
                data_dir=tmp_path,
                port=0,
                acs_resource_id=acs.resource_id,
                acs_openid_config_url=acs.openid_config_url,
            )
            async with _receptionist(settings) as url:
                bearer = token(acs)
                headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
                try:
                    async with websockets.connect(
                        f"{url}/calls/auth-1?clinic={DEMO_CLINIC_ID}",
                        additional_headers=headers,
                        open_timeout=3,
                        close_timeout=2,
                    ) as ws:
                        await asyncio.wait_for(ws.recv(), timeout=3)  # the greeting flows
                        return 101
                except websockets.InvalidStatus as refused:
                    return refused.response.status_code

    return asyncio.run(main())


def test_a_connection_with_acs_token_is_accepted(tls: TlsFiles, tmp_path: Path) -> None:
    assert _connect(tls, tmp_path, lambda acs: acs.sign(lifetime_s=_DAY_S)) == 101


@pytest.mark.parametrize(
    "token",
    [
        lambda acs: None,
        lambda acs: acs.sign(audience="another-acs-resource"),
        lambda acs: acs.sign(lifetime_s=-600),
        lambda acs: acs.sign()[:-4] + "AAAA",
    ],
    ids=["missing", "wrong audience", "expired", "tampered"],
)
def test_a_connection_without_a_valid_token_is_refused_before_accept(
    token: Callable[[LocalAcs], str | None],
    tls: TlsFiles,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    assert _connect(tls, tmp_path, token) == 403
    assert any(r.getMessage().startswith("refused a media stream:") for r in caplog.records)
    assert _no_calls(tmp_path)


def _no_calls(tmp_path: Path) -> bool:
    with sqlite3.connect(tmp_path / "reddytalk.sqlite3") as db:
        return db.execute("SELECT count(*) FROM calls").fetchone() == (0,)


def test_without_an_acs_resource_it_refuses_to_listen_beyond_loopback(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="REDDYTALK_ACS_RESOURCE_ID"):
        create_app(Settings(data_dir=tmp_path, host="0.0.0.0"))
