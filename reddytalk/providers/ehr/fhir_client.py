"""fhirpy's ``AsyncFHIRClient`` over one pooled HTTP session, with tokens and our errors.

fhirpy 2.3.1 quirks this class exists for (all in ``fhirpy/base/lib_async.py``):

- Every request opens and closes its own ``aiohttp.ClientSession``: a new TCP (and
  TLS) connection per request. We override ``_do_request`` (same contract: parsed JSON
  as ``AttrDict``, or ``(json, status)``) to reuse one session.
- Status codes are lost: 412 becomes ``MultipleResourcesFound``, and 409, 400, 500 all
  become ``OperationOutcome``, so a version conflict cannot be told from a server error.
  Here every status maps to one of our errors (below).
- There is no way to send a header with one request (``If-Match``, ``If-None-Exist``),
  and ``authorization`` is one fixed string. ``_do_request``'s ``extra_headers`` carries
  them, and the bearer token is asked of the token provider on every request.
- Its resource objects (``client.resources("Slot")``, ``fetch()``) turn reference dicts
  into ``AsyncFHIRReference`` objects and raise ``AttributeError`` for a missing key;
  ``fetch()`` also drops ``_include``d resources. We read raw bundles (``execute``)
  and keep resources as plain JSON dicts.
- fhirpy's ``get_or_create`` sends the search in the query string of the ``POST``
  (Aidbox style); FHIR's conditional create is the ``If-None-Exist`` header.

Errors: 409 and 412 raise :class:`VersionConflict` (a ``SlotUnavailable``: someone
else changed the resource first); 401 after one token refresh, other 4xx: a
``ProviderError`` that is not retryable, except 408 and 429; 5xx, timeouts and
connection failures: a retryable ``ProviderError``. A message names the method, the
resource type and the status, never a URL or a body (they may hold PHI).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from fhirpy import AsyncFHIRClient
from fhirpy.base.utils import AttrDict

from reddytalk.errors import ProviderError, SlotUnavailable
from reddytalk.providers.ehr.fhir_auth import TokenProvider

__all__ = ["FhirClient", "Json", "VersionConflict"]

Json = dict[str, Any]
"""A FHIR resource or bundle as parsed JSON."""

_PAGE_SIZE = 1000
_MAX_PAGES = 20


class VersionConflict(SlotUnavailable):
    """HTTP 409/412: another writer changed the resource (or holds it) first."""

    def __init__(self) -> None:
        super().__init__("That time was just taken.")


class FhirClient(AsyncFHIRClient):
    """A FHIR R4 client; open it once per process (and event loop), ``close`` at the end.

    Args:
        base_url: The FHIR base, e.g. ``https://ehr.example/fhir/R4``.
        token_provider: Bearer tokens; None for a server without authentication.
        timeout_s: Limit on one request, connection included.
    """

    def __init__(
        self, *, base_url: str, token_provider: TokenProvider | None = None, timeout_s: float = 10.0
    ) -> None:
        super().__init__(base_url.rstrip("/"))
        self._tokens = token_provider
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def read(self, resource_type: str, resource_id: str) -> Json | None:
        """``GET [type]/[id]``; None when it does not exist (404, 410)."""
        status, body = await self._send("GET", f"{resource_type}/{resource_id}", missing_ok=True)
        return None if status in (404, 410) else _resource(body, resource_type)

    async def search(self, resource_type: str, params: Mapping[str, str | Sequence[str]]) -> Json:
        """``GET [type]?params``, every page: a searchset ``Bundle`` whose ``entry`` holds
        the matches and what ``_include`` added (``search.mode`` says which)."""
        query = {
            key: [value] if isinstance(value, str) else list(value) for key, value in params.items()
        }
        query.setdefault("_count", [str(_PAGE_SIZE)])
        bundle = _resource(await self.execute(resource_type, method="get", params=query), "Bundle")
        entries: list[Json] = list(bundle.get("entry") or [])
        for _ in range(_MAX_PAGES):
            next_url = next((link["url"] for link in bundle.get("link") or []
                             if link.get("relation") == "next"), None)  # fmt: skip
            if next_url is None:
                break
            bundle = _resource(await self.execute(next_url, method="get"), "Bundle")
            entries.extend(bundle.get("entry") or [])
        else:
            raise ProviderError(
                f"EHR search of {resource_type} has too many pages", retryable=False
            )
        matches = sum(1 for e in entries if (e.get("search") or {}).get("mode", "match") == "match")
        total = bundle.get("total")
        if isinstance(total, int) and total > matches:
            # Medplum's in-memory repository cuts at _count and links no next page.
            raise ProviderError(f"EHR search of {resource_type} was cut short", retryable=False)
        return {"resourceType": "Bundle", "type": "searchset", "entry": entries}

    async def create_resource(
        self, resource: Json, *, if_none_exist: str | None = None
    ) -> tuple[Json, bool]:
        """``POST [type]``, conditionally when ``if_none_exist`` (a query) is given: the
        resource and whether it was created (False: an existing match was returned)."""
        resource_type = str(resource["resourceType"])
        headers = {"If-None-Exist": if_none_exist} if if_none_exist else {}
        status, body = await self._send("POST", resource_type, data=resource, headers=headers)
        return _resource(body, resource_type), status == 201

    async def update_resource(self, resource: Json, *, version_id: str) -> Json:
        """``PUT [type]/[id]`` with ``If-Match: W/"<version_id>"``.

        Medplum ignores an ``If-Match`` without the quotes: they are always sent.

        Raises:
            VersionConflict: The resource changed since ``version_id`` (412).
        """
        resource_type = str(resource["resourceType"])
        path = f"{resource_type}/{resource['id']}"
        headers = {"If-Match": f'W/"{version_id}"'}
        _, body = await self._send("PUT", path, data=resource, headers=headers)
        return _resource(body, resource_type)

    async def batch(self, requests: Sequence[Json]) -> list[Json]:
        """One ``batch`` Bundle of ``Bundle.entry`` items; the response entries, in order.

        Raises:
            ProviderError: An entry failed (its status is named).
        """
        bundle = {"resourceType": "Bundle", "type": "batch", "entry": list(requests)}
        _, body = await self._send("POST", "", data=bundle)
        entries: list[Json] = list(_resource(body, "Bundle").get("entry") or [])
        for entry in entries:
            status = str((entry.get("response") or {}).get("status", ""))
            if not status[:1] == "2":
                raise ProviderError(f"EHR batch entry failed: {status[:3]}", retryable=False)
        return entries

    async def _send(
        self,
        method: str,
        path: str,
        *,
        data: Json | None = None,
        headers: Mapping[str, str] | None = None,
        missing_ok: bool = False,
    ) -> tuple[int, Any]:
        try:
            body, status = await self._do_request(
                method, path, data=data, extra_headers=dict(headers or {}), returning_status=True
            )
        except _Missing:
            if not missing_ok:
                raise
            return 404, None
        return status, body

    async def _do_request(
        self,
        method: str,
        path: str,
        data: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        extra_headers: dict[str, str] | None = None,
        *,
        returning_status: bool = False,
    ) -> Any:
        """fhirpy's transport, replaced: pooled session, bearer token, our errors."""
        url = self._build_request_url(path, params)
        headers = {
            **self._build_request_headers(),
            "Prefer": "return=representation",
            **(extra_headers or {}),
        }
        payload = None if data is None else json.dumps(data, separators=(",", ":"))
        if payload is not None:
            headers["Content-Type"] = "application/fhir+json"
        method, kind = method.upper(), _kind(path.removeprefix(self.url))
        for attempt in (1, 2):
            token = await self._tokens.access_token() if self._tokens is not None else ""
            if token:
                headers["Authorization"] = f"Bearer {token}"
            status, text = await self._exchange(method, kind, url, payload, headers)
            if status == 401 and token and attempt == 1 and self._tokens is not None:
                self._tokens.expire(token)  # refreshed once; a second 401 is an error
                continue
            break
        if not 200 <= status < 300:
            raise _error(status, f"EHR {method} {kind}", text)
        try:
            body = json.loads(text, object_hook=AttrDict) if text else None
        except ValueError:
            raise ProviderError(f"EHR {method} {kind}: not JSON", retryable=False) from None
        return (body, status) if returning_status else body

    async def _exchange(
        self, method: str, kind: str, url: str, payload: str | None, headers: Mapping[str, str]
    ) -> tuple[int, str]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.request(method, url, data=payload, headers=headers) as r:
                return r.status, await r.text()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ProviderError(
                f"EHR {method} {kind} failed: {type(error).__name__}", retryable=True
            ) from None


class _Missing(ProviderError):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def _error(status: int, what: str, text: str) -> ProviderError | SlotUnavailable:
    if status in (409, 412):
        return VersionConflict()
    message = f"{what} failed: HTTP {status}{_issue_code(text)}"
    if status in (404, 410):
        return _Missing(message)
    return ProviderError(message, retryable=status in (408, 429) or status >= 500)


def _issue_code(text: str) -> str:
    """The first OperationOutcome issue code (a fixed vocabulary; diagnostics may hold PHI)."""
    try:
        issues = json.loads(text).get("issue") or []
        code = issues[0].get("code")
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""
    return f" ({code})" if isinstance(code, str) and code.replace("-", "").isalpha() else ""


def _kind(path: str) -> str:
    """The resource type a path below the base is about (never its id or query)."""
    first = path.split("?", 1)[0].lstrip("/").split("/", 1)[0]
    return first if first[:1].isupper() and first.isalpha() else "request"


def _resource(body: Any, resource_type: str) -> Json:
    if not isinstance(body, dict) or body.get("resourceType") != resource_type:
        raise ProviderError(f"EHR answered something other than a {resource_type}", retryable=False)
    return body
