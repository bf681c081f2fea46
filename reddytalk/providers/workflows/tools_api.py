"""The write workflows through the Functions app's tools API (the cloud profile).

The media worker runs a call; the Functions app runs its writes as Durable
orchestrations. Each request carries the call's own token (from the media URL
ACS connected with), so the API knows the call and the clinic without trusting
the body. A request the API is still working on (202) is sent again: the API
derives the orchestration's instance id from the call and the request, so the
repeat waits for the same run and never books twice.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from reddytalk.errors import ProviderError
from reddytalk.workflows import booking

__all__ = ["ToolsApi", "ToolsApiWorkflows"]

_TOOLS = {
    booking.BOOK_APPOINTMENT: "book",
    booking.RESCHEDULE_APPOINTMENT: "reschedule",
    booking.CANCEL_APPOINTMENT: "cancel",
}
_FIELDS = ("slot_id", "patient_id", "appointment_type", "appointment_id")


class ToolsApiWorkflows:
    """One call's :class:`reddytalk.ports.Workflows` over the tools API."""

    def __init__(
        self, *, api: ToolsApi, call_id: str, call_token: str | None
    ) -> None:
        self._api = api
        self._call_id = call_id
        self._call_token = call_token

    async def run(self, name: str, *, instance_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """POST the tool request; the workflow's result.

        Raises:
            ProviderError: The API refused (not retryable) or could not answer in
                time (retryable); the policy hands the caller to staff.
        """
        if self._call_token is None:
            raise ProviderError("this call has no tools token", retryable=False)
        tool = _TOOLS.get(name)
        if tool is None:
            raise ProviderError(f"no tool runs workflow {name}", retryable=False)
        body = {k: data[k] for k in _FIELDS if k in data}
        return await self._api.post(self._call_id, tool, body, self._call_token)

    async def end_call(self, *, transfer_reason: str | None) -> None:
        """Ask the call's session to hang up, or to transfer to staff."""
        if self._call_token is None:
            raise ProviderError("this call has no tools token", retryable=False)
        if transfer_reason is None:
            await self._api.post(self._call_id, "end_call", {}, self._call_token)
        else:
            body = {"reason": transfer_reason}
            await self._api.post(self._call_id, "transfer_to_staff", body, self._call_token)


class ToolsApi:
    """The tools API of one Functions app; :meth:`for_call` gives a call's workflows.

    Args:
        base_url: The Functions app's origin (``https://<app>.azurewebsites.net``).
        timeout_s: Per request; the API itself waits up to 8 s for a write.
        attempts: Requests sent for one write while the API answers 202.
    """

    def __init__(self, *, base_url: str, timeout_s: float = 10.0, attempts: int = 3) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._attempts = attempts
        self._session: aiohttp.ClientSession | None = None

    def for_call(self, *, call_id: str, call_token: str | None) -> ToolsApiWorkflows:
        """The workflows of one call, authenticated with its token."""
        return ToolsApiWorkflows(api=self, call_id=call_id, call_token=call_token)

    async def post(
        self, call_id: str, tool: str, body: dict[str, Any], token: str
    ) -> dict[str, Any]:
        """Send one tool request until it has a result (bounded)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = f"{self._base_url}/api/calls/{call_id}/tools/{tool}"
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(self._attempts):
            try:
                async with self._session.post(url, json=body, headers=headers) as response:
                    status = response.status
                    payload = await response.json(content_type=None) if status == 200 else None
            except (aiohttp.ClientError, TimeoutError) as error:
                raise ProviderError(
                    f"tools API unreachable: {type(error).__name__}", retryable=True
                ) from None
            if status == 200 and isinstance(payload, dict):
                return payload
            if status != 202:
                raise ProviderError(f"tools API answered {status}", retryable=status >= 500)
            await asyncio.sleep(0)  # still running: ask again for the same instance
        raise ProviderError("tools API did not finish in time", retryable=True)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
