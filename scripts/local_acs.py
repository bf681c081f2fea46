"""The local ACS: a loopback stand-in for Azure Communication Services Call Automation.

* Call Automation REST over HTTPS, as azure-communication-callautomation 1.6 sends it: answer
  ``POST /calling/callConnections:answer`` → 200 ``CallConnectionProperties``; ``:reject`` and
  ``/{id}:terminate`` → 204; ``/{id}:play`` → 202; ``/{id}:transferToParticipant`` → 202
  (azure-docs ``how-tos/call-automation/actions-for-call-control.md`` and
  ``includes/audio-streaming-quickstart-python.md``). The HMAC-SHA256 signature of a connection
  string is checked as ACS checks it. HTTPS because the SDK drops a connection string's scheme
  and always uses ``https://``; clients trust the self-signed :func:`make_tls` certificate.
* The OpenID configuration and JWKS, and RS256 JWTs signed with its key as ACS signs callbacks
  and media WebSocket connects (``iss`` the real ACS issuer, ``aud`` the immutableResourceId):
  azure-docs ``how-tos/call-automation/secure-webhook-endpoint.md``. Plain HTTP on a second port:
  a configuration fetched over HTTP may name an HTTP ``jwks_uri``.
* The JSON ACS sends: the IncomingCall Event Grid event (``AcsIncomingCallEventData``, "Azure
  Communication Services as an Event Grid source") and callback CloudEvents.
* The telephone side (``scripts/local_pstn.py``), plain ``ws://`` on a third port: a caller
  dials ``/calls/{call_id}?to=<E.164>``; IncomingCall goes to ``event_grid_url``, the answer
  opens the media stream to its ``transportUrl``, audio is relayed both ways, and the call's
  callbacks (CallConnected, MediaStreamingStarted, …, CallDisconnected) are posted, signed.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import ssl
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm
from local_pstn import LOCAL_CALLER_NUMBER, LocalPstn, PhoneCall

__all__ = [
    "ACS_ISSUER",
    "LOCAL_CALLER_NUMBER",
    "AnsweredCall",
    "LocalAcs",
    "PhoneCall",
    "Recorded",
    "TlsFiles",
    "make_tls",
]

# The documented issuer (secure-webhook-endpoint), kept apart from reddytalk's own constant so
# that a test of the verifier against this stand-in checks it rather than restating it.
ACS_ISSUER = "https://acscallautomation.communication.azure.com"
_CONFIG_PATH = "/calling/.well-known/acsopenidconfiguration"
_KEYS_PATH = "/calling/keys"
_ANSWER_PATH = "/calling/callConnections:answer"
_LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A PEM certificate and its private key."""

    cert_file: Path
    key_file: Path


def make_tls(folder: Path) -> TlsFiles:
    """A self-signed certificate for 127.0.0.1, its own trust anchor, written into ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _LOOPBACK)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(_LOOPBACK))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(cert_file=folder / "cert.pem", key_file=folder / "key.pem")
    files.cert_file.write_bytes(cert.public_bytes(Encoding.PEM))
    files.key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return files


@dataclass(frozen=True, slots=True)
class Recorded:
    """One REST request as received; ``is_signed``: a valid HMAC of this resource's key."""

    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: Any
    is_signed: bool


@dataclass(frozen=True, slots=True)
class AnsweredCall:
    """A call answered with the documented 200 (scripted answers are not calls)."""

    call_connection_id: str
    server_call_id: str
    correlation_id: str
    incoming_call_context: str
    callback_uri: str
    media_streaming: Mapping[str, Any] | None
    operation_context: str | None


def _hmac_authorization(
    key: bytes, method: str, path_qs: str, date: str, host: str, body: bytes
) -> tuple[str, str]:
    """The ``Authorization`` and ``x-ms-content-sha256`` values ACS expects for a request."""
    content_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()
    to_sign = f"{method}\n{path_qs}\n{date};{host};{content_hash}"
    signature = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest())
    signed = "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256"
    return f"{signed}&Signature={signature.decode()}", content_hash


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _phone(number: str) -> dict[str, Any]:
    """A phone-number communication identifier (``rawId`` is ``4:`` + E.164)."""
    return {"kind": "phoneNumber", "rawId": f"4:{number}", "phoneNumber": {"value": number}}


class LocalAcs:
    """Loopback ACS: Call Automation REST over HTTPS (the SDK always uses https), the
    OpenID configuration + JWKS over plain HTTP on a second port, and a phone line callers
    dial over plain WebSocket on a third (``scripts/local_pstn.py``; loopback only).

    REST requests are answered as documented unless ``script`` holds ``(status, json_body)``
    answers, which are used first, in order (``None`` body: no body); scripted answers do
    not act on calls.

    Args:
        tls: The certificate the REST port serves.
        resource_id: The ACS resource's immutableResourceId: the audience of its JWTs.
        event_grid_url: Where IncomingCall events are POSTed (an Event Grid subscription's
            webhook, e.g. ``<functions host>/runtime/webhooks/EventGrid?functionName=
            incoming_call``); may be set after start. Without it a caller is refused (503).
        ring_timeout_s: How long a call rings unanswered before the caller is refused (504).

    Attributes:
        issuer: ``iss`` of its JWTs: the real ACS issuer.
        connection_string: ``endpoint=https://127.0.0.1:<port>/;accesskey=<base64>``.
        ca_file: What a client must trust (``connection_verify``).
        openid_config_url: Its OpenID configuration, naming its JWKS (plain HTTP).
        requests: Every REST request, in order; ``answered``: the calls it answered.
        pstn_url: ``ws://127.0.0.1:<port>``: dial ``<it>/calls/{call_id}?to=<E.164>``.
        calls: Every call dialled, by call id (its state, who ended it, its callbacks).
        browser_origins: The web origins whose pages may dial (``Origin`` header); a
            caller that sends no ``Origin`` (not a browser) may always dial.
    """

    def __init__(
        self,
        tls: TlsFiles,
        *,
        resource_id: str = "local-acs-resource",
        event_grid_url: str | None = None,
        ring_timeout_s: float = 8.0,
    ) -> None:
        self.resource_id = resource_id
        self.event_grid_url = event_grid_url
        self.browser_origins: set[str] = set()
        self.issuer = ACS_ISSUER
        self.access_key = secrets.token_bytes(32)
        self.requests: list[Recorded] = []
        self.script: list[tuple[int, Any]] = []
        self.answered: list[AnsweredCall] = []
        self.port = 0
        self.keys_port = 0
        self.pstn_port = 0
        self._tls = tls
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = secrets.token_hex(8)
        self._incoming: dict[str, tuple[str, str]] = {}  # context → (correlation, server call)
        self._runners: list[web.AppRunner] = []
        self._pstn = LocalPstn(self, ring_timeout_s=ring_timeout_s)

    @property
    def connection_string(self) -> str:
        key = base64.b64encode(self.access_key).decode()
        return f"endpoint=https://{_LOOPBACK}:{self.port}/;accesskey={key}"

    @property
    def ca_file(self) -> Path:
        return self._tls.cert_file

    @property
    def openid_config_url(self) -> str:
        return f"http://{_LOOPBACK}:{self.keys_port}{_CONFIG_PATH}"

    @property
    def pstn_url(self) -> str:
        return f"ws://{_LOOPBACK}:{self.pstn_port}"

    @property
    def calls(self) -> dict[str, PhoneCall]:
        return self._pstn.calls

    async def __aenter__(self) -> LocalAcs:
        rest = web.Application()
        rest.router.add_route("*", "/{tail:.*}", self._handle)
        keys = web.Application()
        keys.router.add_get(_CONFIG_PATH, self._openid_config)
        keys.router.add_get(_KEYS_PATH, self._jwks)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._tls.cert_file, self._tls.key_file)
        try:
            self.port = await self._serve(rest, context)
            self.keys_port = await self._serve(keys, None)
            await self._pstn.start()
            # No access log: a call's URL holds the dialled number (as the media worker's).
            self.pstn_port = await self._serve(self._pstn.web_app(), None, is_logged=False)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._pstn.close()  # hangs up the calls before their listener goes
        while self._runners:
            await self._runners.pop().cleanup()

    async def _serve(
        self, app: web.Application, context: ssl.SSLContext | None, *, is_logged: bool = True
    ) -> int:
        quiet: dict[str, Any] = {} if is_logged else {"access_log": None}
        runner = web.AppRunner(app, shutdown_timeout=0.5, **quiet)
        await runner.setup()
        self._runners.append(runner)
        sock = socket.socket()
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        await web.SockSite(runner, sock, ssl_context=context).start()
        return port

    def sign(self, *, audience: str | None = None, lifetime_s: int = 300, **claims: Any) -> str:
        """An RS256 JWT as ACS puts on callbacks (5 minutes) and WebSocket connects (24 h).

        ``claims`` are added last, so they may override ``iss``, ``iat``, ``nbf`` or ``exp``.
        """
        now = int(time.time())
        aud = audience if audience is not None else self.resource_id
        payload = {"iss": self.issuer, "aud": aud, "iat": now, "nbf": now, "exp": now + lifetime_s}
        payload.update(claims)
        return jwt.encode(payload, self._key, algorithm="RS256", headers={"kid": self._kid})

    def incoming_call_event(
        self, *, to_number: str, from_number: str, correlation_id: str | None = None
    ) -> dict[str, Any]:
        """An IncomingCall Event Grid event (EventGridEvent schema) whose context it can answer."""
        correlation_id = correlation_id or str(uuid.uuid4())
        server_call_id = _b64url(f"https://local-acs/conv/{uuid.uuid4()}".encode())
        # Opaque to the receiver; shaped like ACS's (an unsigned JWT-like string).
        header = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        context = f"{header}.{_b64url(json.dumps({'cc': secrets.token_urlsafe(48)}).encode())}."
        self._incoming[context] = (correlation_id, server_call_id)
        return {
            "id": str(uuid.uuid4()),
            "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local"
            f"/providers/Microsoft.Communication/communicationServices/{self.resource_id}",
            "subject": f"/caller/4:{from_number}/recipient/4:{to_number}",
            "data": {
                "to": _phone(to_number),
                "from": _phone(from_number),
                "serverCallId": server_call_id,
                "callerDisplayName": "",
                "incomingCallContext": context,
                "correlationId": correlation_id,
            },
            "eventType": "Microsoft.Communication.IncomingCall",
            "eventTime": _now(),
            "dataVersion": "1.0",
            "metadataVersion": "1",
        }

    def callback_event(
        self, name: str, *, correlation_id: str, call_connection_id: str, **data: Any
    ) -> dict[str, Any]:
        """One callback CloudEvent, ``type`` ``Microsoft.Communication.<name>``; ``data`` last."""
        answered = (a for a in self.answered if a.call_connection_id == call_connection_id)
        known = next(answered, None)
        source = f"calling/callConnections/{call_connection_id}"
        return {
            "id": str(uuid.uuid4()),
            "source": source,
            "type": f"Microsoft.Communication.{name}",
            "data": {
                "callConnectionId": call_connection_id,
                "serverCallId": known.server_call_id if known else _b64url(uuid.uuid4().bytes),
                "correlationId": correlation_id,
                **data,
            },
            "time": _now(),
            "specversion": "1.0",
            "datacontenttype": "application/json",
            "subject": source,
        }

    async def _openid_config(self, request: web.Request) -> web.Response:
        jwks_uri = f"http://{_LOOPBACK}:{self.keys_port}{_KEYS_PATH}"
        return web.json_response({"issuer": self.issuer, "jwks_uri": jwks_uri})

    async def _jwks(self, request: web.Request) -> web.Response:
        jwk = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        jwk.update(kid=self._kid, use="sig", alg="RS256")
        return web.json_response({"keys": [jwk]})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        date, host = request.headers.get("x-ms-date", ""), f"{_LOOPBACK}:{self.port}"
        expected = _hmac_authorization(
            self.access_key, request.method, request.raw_path, date, host, raw
        )
        sent = (request.headers.get("Authorization"), request.headers.get("x-ms-content-sha256"))
        body = json.loads(raw) if raw else None
        self.requests.append(
            Recorded(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=request.headers.copy(),
                body=body,
                is_signed=sent == expected,
            )
        )
        if self.script:
            status, answer = self.script.pop(0)
        else:
            status, answer = self._documented(request.path, body)
            answered = self.answered[-1] if request.path == _ANSWER_PATH else None
            self._pstn.on_request(request.method, request.path, body, answered)
        if answer is None:
            return web.Response(status=status)
        return web.json_response(answer, status=status)

    def _documented(self, path: str, body: Any) -> tuple[int, Any]:
        if path == _ANSWER_PATH:
            return 200, self._answer(body if isinstance(body, dict) else {})
        if path.endswith(":transferToParticipant"):
            context = body.get("operationContext") if isinstance(body, dict) else None
            return 202, {"operationContext": context or "transfer"}
        if path.endswith(":play"):
            return 202, None
        return 204, None  # :reject, :terminate

    def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        context = str(body.get("incomingCallContext", ""))
        correlation_id, server_call_id = self._incoming.get(
            context, (str(uuid.uuid4()), _b64url(uuid.uuid4().bytes))
        )
        media = body.get("mediaStreamingOptions")
        call = AnsweredCall(
            call_connection_id=str(uuid.uuid4()),
            server_call_id=server_call_id,
            correlation_id=correlation_id,
            incoming_call_context=context,
            callback_uri=str(body.get("callbackUri", "")),
            media_streaming=media if isinstance(media, dict) else None,
            operation_context=body.get("operationContext"),
        )
        self.answered.append(call)
        properties: dict[str, Any] = {
            "callConnectionId": call.call_connection_id,
            "serverCallId": call.server_call_id,
            "callConnectionState": "connecting",
            "callbackUri": call.callback_uri,
            "correlationId": call.correlation_id,
        }
        if call.media_streaming is not None:
            properties["mediaStreamingSubscription"] = {
                "id": str(uuid.uuid4()),
                "state": "inactive",
                "subscribedContentTypes": ["audio"],
            }
        return properties
