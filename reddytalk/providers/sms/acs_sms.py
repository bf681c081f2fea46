"""ACS SMS behind :class:`reddytalk.ports.SmsSender` (the cloud profile).

Drives azure-communication-sms 1.1's async ``SmsClient``, which sends one request per
text: ``POST {endpoint}/sms?api-version=2021-03-07`` (HMAC-SHA256 with a connection
string, Bearer for ``https://communication.azure.com//.default`` with a token
credential), body ``{"from", "smsRecipients": [{"to", "repeatabilityRequestId",
"repeatabilityFirstSent"}], "message", "smsSendOptions": {"enableDeliveryReport"}}``.
ACS answers 202 with ``{"value": [{"to", "messageId", "httpStatusCode", "successful",
"errorMessage"?}]}``: a 202 can still carry a recipient that failed (``successful``
false). Sources: learn.microsoft.com ``rest/api/communication/sms/send`` and
``rest/api/communication/repeatable-requests``.

Idempotency, as the SDK does it: ``SmsClient.send`` makes a fresh ``uuid4`` as each
recipient's ``repeatabilityRequestId`` and stamps ``repeatabilityFirstSent`` with the
current time, once per call of ``send``. ACS tracks those ids for 5 minutes, so they
make the SDK's own resends of that one request (its retry policy) safe, and nothing
else: calling ``send`` again is a new text. So one text per appointment change is
ReddyTalk's claim in the store (:mod:`reddytalk.calls.confirmations`), and the SDK's
retries stay off here as in every adapter (with a caller waiting, and a ``Retry-After``
the SDK would honour for as long as it says).

The sender is the clinic's own ACS number (the number callers dial): it must have the
SMS capability in ACS (US toll-free numbers do after toll-free verification; local
numbers need 10DLC registration), or ACS refuses every text. Opt-outs of US toll-free
numbers (STOP, START/UNSTOP) are the carriers': ACS blocks texts to a recipient who
replied STOP, and the delivery report says so; the text needs no "Reply STOP" line.
Delivery reports (``enable_delivery_report``) arrive as the Event Grid event
``Microsoft.Communication.SMSDeliveryReportReceived`` once something subscribes.

Nothing here logs; no error carries a number, the text, or the service's error text
(which may echo the number).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

from azure.communication.sms import SmsSendResult
from azure.communication.sms.aio import SmsClient
from azure.core.credentials_async import AsyncTokenCredential

from reddytalk.errors import ProviderError
from reddytalk.providers.azure_errors import is_retryable_status, provider_errors

__all__ = ["AcsSmsSender"]


def message_id_of(results: Sequence[SmsSendResult]) -> str:
    """The message id of the one recipient's result (the 202 body's ``value``).

    Raises:
        ProviderError: ACS refused the recipient (``successful`` false; retryable when
            its ``httpStatusCode`` is 408, 429 or 5xx), or answered no message id.
    """
    if len(results) != 1:
        raise ProviderError(f"ACS SMS answered {len(results)} results for 1", retryable=False)
    [result] = results
    if not result.successful:
        status = result.http_status_code
        raise ProviderError(
            f"ACS SMS refused the recipient: HTTP {status}", retryable=is_retryable_status(status)
        )
    if not result.message_id:
        raise ProviderError("ACS SMS answered no message id", retryable=False)
    return str(result.message_id)


class AcsSmsSender:
    """Sends texts through ACS SMS, delivery reports on.

    Args:
        connection_string: ``endpoint=https://…/;accesskey=…`` (local use and tests). The
            SDK drops the scheme and always talks HTTPS.
        endpoint: The ACS resource endpoint, used with ``credential``.
        credential: An azure-core ``AsyncTokenCredential`` (managed identity in the cloud).
        client_options: azure-core options for the client (transport, ``retry_total``,
            ``connection_verify``, timeouts). The SDK's retries are off unless set here.

    Raises:
        ValueError: Neither or both of ``connection_string`` and ``endpoint`` + ``credential``.
    """

    def __init__(
        self,
        *,
        connection_string: str | None = None,
        endpoint: str | None = None,
        credential: AsyncTokenCredential | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        # azure-core would otherwise retry up to 10 times (POSTs on 500/503/504 or Retry-After).
        options: dict[str, Any] = {"retry_total": 0, **(client_options or {})}
        if connection_string is not None and endpoint is None and credential is None:
            self._client = SmsClient.from_connection_string(connection_string, **options)
        elif connection_string is None and endpoint is not None and credential is not None:
            self._client = SmsClient(endpoint, credential, **options)
        else:
            raise ValueError("give either connection_string, or endpoint and credential")

    def __repr__(self) -> str:
        return "AcsSmsSender()"

    async def send(
        self,
        to_number: str,
        text: str,
        *,
        from_number: str,
        clinic_id: str,
        call_id: str,
        idempotency_key: str,
    ) -> str:
        """Send ``text`` to ``to_number`` from the clinic's ACS number; ACS's message id.

        ``clinic_id``, ``call_id`` and ``idempotency_key`` stay here: ACS keeps no key
        of ours (see the module docstring); the caller claimed the key before sending.

        Raises:
            ProviderError: ACS refused (not retryable: a bad or blocked number, a sender
                without SMS) or could not answer (retryable: 408, 429, 5xx, transport).
        """
        with provider_errors("ACS SMS", "send"):
            results = await self._client.send(
                from_=from_number, to=to_number, message=text, enable_delivery_report=True
            )
        return message_id_of(results)

    async def close(self) -> None:
        """Close the client's HTTP session."""
        await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
