"""A loopback Azure Key Vault: the part of the data-plane REST API the ReddyTalk adapters use.

HTTPS only (the SDKs' challenge policy refuses to send a bearer token over http), with a
self-signed certificate for 127.0.0.1 that clients trust through ``connection_verify``. It
serves, as the Key Vault REST reference and the SDK sources (``_generated/_operations``)
describe them:

* the challenge: a request without ``Authorization: Bearer <token>``, or with a token this
  vault did not expect, gets 401 with ``WWW-Authenticate: Bearer
  authorization="https://login.microsoftonline.com/<tenant>", resource="https://vault.azure.net"``
  and ``{"error": {"code": "Unauthorized", …}}``;
* ``GET /secrets/{name}[/{version}]`` → ``SecretBundle``; 404 ``SecretNotFound``;
* ``GET /keys/{name}[/{version}]`` → ``KeyBundle`` with the public JWK of an RSA key it holds;
  404 ``KeyNotFound``;
* ``POST /keys/{name}/{version}/wrapkey`` and ``/unwrapkey`` with ``{"alg", "value"}``
  (base64url) → ``{"kid", "value"}``, real RSA-OAEP-256 with ``cryptography``; 400
  ``BadParameter`` for a value the key cannot decrypt or another algorithm.

Every request is recorded (method, path, query, headers, JSON body), the 401s included. Every
vault listens on a port no earlier vault of this process used: the SDKs cache a vault's
challenge per host and port for the whole process, and a new vault should see the whole flow.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web
from azure.core.credentials import AccessToken
from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from local_acs import TlsFiles, make_tls  # one loopback certificate maker (scripts/)

__all__ = [
    "KEY_VAULT_SCOPE",
    "LoopbackKeyVault",
    "Recorded",
    "RecordingCredential",
    "TlsFiles",
    "TokenRequest",
    "make_tls",
    "unreachable_vault_url",
]

KEY_VAULT_SCOPE = "https://vault.azure.net/.default"
_RESOURCE = "https://vault.azure.net"
_LOOPBACK = "127.0.0.1"
_ports_served: set[int] = set()


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One ``get_token`` call: the scopes and the keyword arguments the SDK passed."""

    scopes: tuple[str, ...]
    tenant_id: str | None
    claims: str | None
    enable_cae: bool


class RecordingCredential:
    """An azure-core async ``TokenCredential`` that issues one opaque token and records asks.

    The stand-in for ``DefaultAzureCredential``: what Microsoft Entra ID would issue is
    opaque to the client, so any string will do as long as the vault expects it.
    """

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.requests: list[TokenRequest] = []
        self.is_closed = False

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.requests.append(TokenRequest(scopes, tenant_id, claims, enable_cae))
        return AccessToken(self.token, int(time.time()) + 3600)

    async def close(self) -> None:
        self.is_closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request as received; ``headers`` has lower-case names."""

    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: Any


@dataclass(slots=True)
class _KeyVersion:
    version: str
    private_key: rsa.RSAPrivateKey
    attributes: dict[str, Any]
    created: int = field(default_factory=lambda: int(time.time()))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


# RSA-OAEP-256 (the JWA name): OAEP with SHA-256 and MGF1-SHA-256, the algorithm the adapter uses.
_OAEP_256 = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _attributes(created: int) -> dict[str, Any]:
    return {
        "enabled": True,
        "created": created,
        "updated": created,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90,
    }


def unreachable_vault_url() -> str:
    """An https URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind((_LOOPBACK, 0))
        port = sock.getsockname()[1]
    return f"https://{_LOOPBACK}:{port}"


def _fresh_socket() -> socket.socket:
    """A listening-ready socket on a loopback port no earlier vault of this process had."""
    spent: list[socket.socket] = []
    try:
        while True:
            sock = socket.socket()
            sock.bind((_LOOPBACK, 0))
            port = sock.getsockname()[1]
            if port not in _ports_served:
                _ports_served.add(port)
                return sock
            spent.append(sock)  # held open so the next bind gets another port
    finally:
        for sock in spent:
            sock.close()


class LoopbackKeyVault:
    """A Key Vault on 127.0.0.1 over HTTPS; use as ``async with LoopbackKeyVault(…) as vault``.

    Args:
        tls: Its certificate and key.
        token: The one bearer token it accepts (the test credential's).
        tenant_id: The tenant its challenge names.

    Attributes:
        requests: Every request received, in order.
        failure: ``(status, code)`` to answer every authenticated request with, or None.
        is_key_read_denied: Answer ``GET /keys/…`` with 403, as for an identity without the
            ``keys/get`` permission (wrap and unwrap still work).
    """

    def __init__(self, tls: TlsFiles, *, token: str, tenant_id: str | None = None) -> None:
        self._tls = tls
        self._token = token
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.requests: list[Recorded] = []
        self.failure: tuple[int, str] | None = None
        self.is_key_read_denied = False
        self._secrets: dict[str, list[tuple[str, str]]] = {}
        self._keys: dict[str, list[_KeyVersion]] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def client_options(self) -> dict[str, Any]:
        """What an SDK client needs to reach this vault: trust its certificate, and accept a
        challenge for ``vault.azure.net`` from 127.0.0.1 (TLS is verified all the same)."""
        return {"connection_verify": str(self._tls.cert_file), "verify_challenge_resource": False}

    # -- state ----------------------------------------------------------------------------

    def set_secret(self, name: str, value: str) -> str:
        """Store a new current version of secret ``name``; its id."""
        version = uuid.uuid4().hex
        self._secrets.setdefault(name.lower(), []).append((version, value))
        return f"{self.url}/secrets/{name}/{version}"

    def create_key(self, name: str, **attributes: Any) -> str:
        """Create key ``name``, or a new current version of it (a rotation); the version's id.

        ``attributes`` go into the version's ``KeyAttributes`` (``enabled``, ``exp``, ``nbf``).
        """
        private_key = rsa.generate_private_key(65537, 2048)
        version = _KeyVersion(uuid.uuid4().hex, private_key, attributes)
        self._keys.setdefault(name.lower(), []).append(version)
        return f"{self.url}/keys/{name}/{version.version}"

    def private_key(self, key_id: str) -> rsa.RSAPrivateKey:
        """The private key of version ``key_id`` (which a real vault never hands out)."""
        name, version = key_id.removeprefix(f"{self.url}/keys/").split("/")
        found = self._key_version(name, version)
        if found is None:
            raise KeyError(key_id)
        return found.private_key

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application(middlewares=[self._record_and_authenticate])
        app.router.add_get("/secrets/{name}", self._get_secret)
        app.router.add_get("/secrets/{name}/{version:[^/]*}", self._get_secret)
        app.router.add_get("/keys/{name}", self._get_key)
        app.router.add_get("/keys/{name}/{version:[^/]*}", self._get_key)
        app.router.add_post("/keys/{name}/{version}/{operation:wrapkey|unwrapkey}", self._wrap)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._tls.cert_file, self._tls.key_file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = _fresh_socket()
        await web.SockSite(self._runner, sock, ssl_context=context).start()
        self.url = f"https://{_LOOPBACK}:{sock.getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- HTTP -----------------------------------------------------------------------------

    @web.middleware
    async def _record_and_authenticate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.requests.append(
            Recorded(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers={name.lower(): value for name, value in request.headers.items()},
                body=body,
            )
        )
        if request.headers.get("Authorization") != f"Bearer {self._token}":
            missing = "Authorization" not in request.headers
            response = _error(
                401,
                "Unauthorized",
                "AKV10000: Request is missing a Bearer or PoP token."
                if missing
                else "AKV10022: Invalid token: not issued for this vault.",
            )
            response.headers["WWW-Authenticate"] = (
                f'Bearer authorization="https://login.microsoftonline.com/{self.tenant_id}", '
                f'resource="{_RESOURCE}"'
            )
            return response
        if "api-version" not in request.query:
            return _error(400, "BadParameter", "The api-version query parameter is missing.")
        if self.failure is not None:
            status, code = self.failure
            return _error(status, code, "The loopback vault was told to fail.")
        return await handler(request)

    async def _get_secret(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        version = request.match_info.get("version", "")
        versions = self._secrets.get(name.lower(), [])
        found = [v for v in versions if v[0] == version] if version else versions[-1:]
        if not found:
            return _error(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {name}/{version} was not found in this key vault.",
            )
        version, value = found[0]
        secret_id = f"{self.url}/secrets/{name}/{version}"
        bundle = {"value": value, "id": secret_id, "attributes": _attributes(int(time.time()))}
        return web.json_response(bundle)

    def _key_version(self, name: str, version: str) -> _KeyVersion | None:
        versions = self._keys.get(name.lower(), [])
        if not version:
            return versions[-1] if versions else None
        return next((v for v in versions if v.version == version), None)

    def _key_not_found(self, name: str, version: str) -> web.Response:
        message = f"A key with (name/id) {name}/{version} was not found in this key vault."
        return _error(404, "KeyNotFound", message)

    async def _get_key(self, request: web.Request) -> web.Response:
        if self.is_key_read_denied:
            return _error(403, "Forbidden", "The caller does not have keys get permission.")
        name = request.match_info["name"]
        version = request.match_info.get("version", "")
        found = self._key_version(name, version)
        if found is None:
            return self._key_not_found(name, version)
        numbers = found.private_key.public_key().public_numbers()
        return web.json_response(
            {
                "key": {
                    "kid": f"{self.url}/keys/{name}/{found.version}",
                    "kty": "RSA",
                    "key_ops": ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"],
                    "n": _b64url(_int_bytes(numbers.n)),
                    "e": _b64url(_int_bytes(numbers.e)),
                },
                "attributes": {
                    **_attributes(found.created),
                    "exportable": False,
                    **found.attributes,
                },
            }
        )

    async def _wrap(self, request: web.Request) -> web.Response:
        """``wrapkey`` (public-key encryption) or ``unwrapkey`` (private-key decryption)."""
        name, version = request.match_info["name"], request.match_info["version"]
        found = self._key_version(name, version)
        if found is None:
            return self._key_not_found(name, version)
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            return _error(400, "BadParameter", "Property 'value' is required.")
        if body.get("alg") != "RSA-OAEP-256":
            return _error(400, "BadParameter", "Unsupported algorithm.")
        value = _unb64url(body["value"])
        if request.match_info["operation"] == "unwrapkey":
            try:
                result = found.private_key.decrypt(value, _OAEP_256)
            except (ValueError, InvalidKey):
                return _error(
                    400, "BadParameter", "Unable to decrypt specified value with this key."
                )
        else:
            result = found.private_key.public_key().encrypt(value, _OAEP_256)
        kid = f"{self.url}/keys/{name}/{found.version}"
        return web.json_response({"kid": kid, "value": _b64url(result)})
