"""The local stack: ReddyTalk on loopback, taking the same path as a call in Azure.

    local caller ──ws──▶ local ACS phone line ──IncomingCall──▶ Functions (local host)
                            │                      incoming_call answers ──▶ local ACS
                            ├──media stream (JWT)──▶ media worker ──tools API──▶ Functions
                            └──callbacks (JWT)─────▶ call_events ──▶ call_session

Three pieces in this process: the local ACS (``local_acs.py``: Call Automation,
signing keys, the phone line), the Functions app served by the local host
(``local_functions.py``, its orchestrations in process), and the media worker.
They share one SQLite store, as the cloud apps share Cosmos DB and the EHR.

The Functions app reads its settings from the environment, as in Azure; the
stack sets them for its lifetime and puts the old values back after.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from azure.durable_functions.models.utils import http_utils
from local_acs import LocalAcs, make_tls
from local_functions import LocalFunctionsHost
from receptionist_cli import _receptionist

from function_app import app
from functions import runtime
from reddytalk.settings import Settings

__all__ = ["LocalStack", "functions_environment", "local_admin_token", "local_stack"]


@dataclass(frozen=True, slots=True)
class LocalStack:
    """Where the pieces of a running local stack listen."""

    phone_url: str
    """Dial ``<it>/calls/<call-id>?to=<E.164>`` (what ``scripts/call --url`` takes)."""
    functions_url: str
    media_url: str
    acs: LocalAcs
    functions: LocalFunctionsHost
    admin_token: str
    """The admin API's local token (Operator rights): ``Authorization: Bearer <it>``."""


def functions_environment(acs: LocalAcs, data_dir: Path) -> dict[str, str]:
    """The Functions app's settings for the local ACS and a store folder.

    The public URLs (``REDDYTALK_PUBLIC_FUNCTIONS_URL``, ``_MEDIA_URL``) and the
    tools secret are the caller's to add: they depend on what else runs.
    """
    return {
        "REDDYTALK_DATA_DIR": str(data_dir),
        "REDDYTALK_ACS_CONNECTION_STRING": acs.connection_string,
        "REDDYTALK_ACS_CA_FILE": str(acs.ca_file),
        "REDDYTALK_ACS_RESOURCE_ID": acs.resource_id,
        "REDDYTALK_ACS_OPENID_CONFIG_URL": acs.openid_config_url,
    }


def local_admin_token(data_dir: Path) -> str:
    """The admin API's local token, kept in ``<data_dir>/admin-token`` (mode 0600).

    Made once (``secrets.token_urlsafe(32)``) and reused, so a console or script that
    saved it keeps working across restarts; delete the file to get a new one.
    """
    path = data_dir / "admin-token"
    try:
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        token = ""
    if len(token) < 32:  # absent, or not one of ours: make a new one
        token = secrets.token_urlsafe(32)
        # O_EXCL after unlinking: the file is created 0600, never readable by others.
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(token + "\n")
    os.chmod(path, 0o600)  # a copied-in file may have come with wider rights
    return token


def _origins_of(url: str) -> set[str]:
    """The origins a browser may send for a page of ``url`` (127.0.0.1 or localhost)."""
    port = urlsplit(url).port
    return {f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://[::1]:{port}"}


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.asynccontextmanager
async def local_stack(settings: Settings) -> AsyncIterator[LocalStack]:
    """Start the local ACS, the Functions app and the media worker; stop them after."""
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    tls = make_tls(data_dir / "tls")
    async with LocalAcs(tls) as acs:
        env = {
            **functions_environment(acs, data_dir),
            "REDDYTALK_TOOLS_SECRET": secrets.token_urlsafe(32),
            "REDDYTALK_ADMIN_TOKEN": local_admin_token(data_dir),
            "REDDYTALK_SOFTPHONE_LINE_URL": acs.pstn_url,
        }
        with _environment(env):
            try:
                async with LocalFunctionsHost(app) as functions:
                    os.environ["REDDYTALK_PUBLIC_FUNCTIONS_URL"] = functions.url
                    # The console's softphone dials from the console's page.
                    acs.browser_origins = _origins_of(functions.url)
                    acs.event_grid_url = (
                        f"{functions.url}/runtime/webhooks/EventGrid?functionName=incoming_call"
                    )
                    worker = dataclasses.replace(
                        settings,
                        data_dir=data_dir,
                        acs_resource_id=acs.resource_id,
                        acs_openid_config_url=acs.openid_config_url,
                        tools_api_url=functions.url,
                    )
                    async with _receptionist(worker) as media_url:
                        os.environ["REDDYTALK_PUBLIC_MEDIA_URL"] = media_url
                        yield LocalStack(
                            acs.pstn_url,
                            functions.url,
                            media_url,
                            acs,
                            functions,
                            env["REDDYTALK_ADMIN_TOKEN"],
                        )
            finally:
                await runtime.reset()
                await http_utils._close_session()  # the Durable client's module-level session
