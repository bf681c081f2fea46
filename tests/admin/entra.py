"""A loopback Entra ID for the admin API's tests: a tenant's v2.0 OpenID configuration
and key set over HTTP, and tokens signed as Entra ID signs them (RS256, ``kid``)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
AUDIENCE = "api://reddytalk-admin"
ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"


def _rsa_key() -> rsa.RSAPrivateKey:
    # 2048 bits: smaller keys make PyJWT warn, and warnings are errors here.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY, OTHER_KEY = _rsa_key(), _rsa_key()


@dataclass
class Entra:
    """The tenant's published configuration and keys, and token minting."""

    port: int = 0
    jwks: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {**RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True), "kid": "k1", "use": "sig"}
        ]
    )

    @property
    def config_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{TENANT}/v2.0/.well-known/openid-configuration"

    def body(self, path: str) -> dict[str, Any] | None:
        if path == f"/{TENANT}/discovery/v2.0/keys":
            return {"keys": self.jwks}
        if path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
            jwks_uri = f"http://127.0.0.1:{self.port}/{TENANT}/discovery/v2.0/keys"
            return {"issuer": ISSUER, "jwks_uri": jwks_uri}
        return None


def token(
    *,
    roles: tuple[str, ...] = (),
    oid: str | None = None,
    groups: tuple[str, ...] = (),
    key: rsa.RSAPrivateKey = KEY,
    kid: str = "k1",
    **overrides: Any,
) -> str:
    """A token as Entra ID issues it for the admin API; ``overrides`` set (None: drop)
    any claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "tid": TENANT,
        "oid": oid or str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "roles": list(roles),
    }
    if groups:
        claims["groups"] = list(groups)
    claims.update(overrides)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


@contextmanager
def loopback_entra() -> Iterator[Entra]:
    """Serve a tenant's configuration and keys on loopback for the block's duration."""
    state = Entra()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = state.body(self.path)
            data = json.dumps(body or {"error": "not found"}).encode()
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="entra", daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
