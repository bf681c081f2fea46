"""Start ``tests/servers/fhir/server.mjs`` (Medplum's FHIR router, in memory) for tests.

It needs ``npm ci --prefix tests/servers/fhir``; without it the tests that use it fail
with that command in the message, they are never skipped.

What ``@medplum/fhir-router`` 4.5.2's ``MemoryRepository`` does (5.x wants Node 22;
this machine has Node 20, which 4.5.2 supports):

- Conditional create (``If-None-Exist``): 201 new, 200 with the existing match, 412 when
  several match. Atomic: its search and create run in one JavaScript turn, no I/O
  between them, so concurrent requests are served one after the other.
- ``PUT`` with ``If-Match``: 412 unless the quoted value is the current
  ``meta.versionId``. An ``If-Match`` without quotes is ignored (no check at all).
- The router returns no headers; ``server.mjs`` adds ``ETag: W/"<versionId>"`` and
  ``Location``. ``batch`` Bundles work.
- Search: tokens (``identifier=system|value``), references (``schedule=Schedule/a,
  Schedule/b``, ``patient``, ``organization``, ``actor``), dates with prefixes (several
  ``start`` ANDed, offsets compared as instants), strings (prefix, case-insensitive; even
  ``:exact``). ``_count`` cuts the result without a ``next`` link (``total`` tells);
  ``_sort`` compares values as strings and applies several keys last-first; FHIR's
  search escaping (``\\,`` ``\\|``) is not honoured. Resources are not validated.
  The adapter copes: it checks ``total``, sorts itself, stores key digests, and builds
  what it writes with fhir.resources.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

__all__ = ["NPM_INSTALL", "FhirServer", "running_fhir_server"]

SERVER_DIR = Path(__file__).resolve().parent
NPM_INSTALL = "npm ci --prefix tests/servers/fhir"
_STARTUP_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class FhirServer:
    """A running loopback FHIR server; ``token`` is the bearer token it wants ("" none)."""

    origin: str
    token: str

    @property
    def base_url(self) -> str:
        """The FHIR base URL."""
        return f"{self.origin}/fhir/R4"

    def reset(self) -> None:
        """Empty the server's repository."""
        request = urllib.request.Request(f"{self.origin}/reset", method="POST")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 204


@contextmanager
def running_fhir_server(*, token: str = "") -> Iterator[FhirServer]:
    """``node server.mjs 0`` on 127.0.0.1 until the block ends; fails the test if it is not
    installed or does not start."""
    if not (SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        pytest.fail(f"the FHIR test server is not installed: run `{NPM_INSTALL}`", pytrace=False)
    node = shutil.which("node")
    if node is None:
        pytest.fail("`node` (Node.js 20) is not on PATH: the FHIR test server needs it")
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [node, str(SERVER_DIR / "server.mjs"), "0"],
            cwd=SERVER_DIR,
            env={**os.environ, "FHIR_BEARER_TOKEN": token},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        try:
            port = _read_port(process, log)
            yield FhirServer(origin=f"http://127.0.0.1:{port}", token=token)
        finally:
            _stop(process)


def _read_port(process: subprocess.Popen[bytes], log: IO[bytes]) -> int:
    stdout = process.stdout
    assert stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        line = stdout.readline() if selector.select(_STARTUP_TIMEOUT_S) else b""
    if not line.strip().isdigit():
        _stop(process)
        log.seek(0)
        output = log.read().decode(errors="replace")[-2000:]
        pytest.fail(f"the FHIR test server did not start:\n{output}", pytrace=False)
    return int(line)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None:
        process.stdin.close()  # the server stops when its stdin closes
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()
