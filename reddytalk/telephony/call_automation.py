"""ACS Call Automation behind :class:`reddytalk.ports.CallControl`.

Drives azure-communication-callautomation 1.6's async ``CallAutomationClient``, which sends
(api-version ``2026-03-12``, HMAC-SHA256 with a connection string, Bearer with a token
credential):

* answer: ``POST /calling/callConnections:answer`` → 200 ``CallConnectionProperties``
* reject: ``POST /calling/callConnections:reject`` → 204
* play: ``POST /calling/callConnections/{id}:play`` → 202
* transfer: ``POST /calling/callConnections/{id}:transferToParticipant`` → 202
* hang up for everyone: ``POST /calling/callConnections/{id}:terminate`` → 204

Sources (azure-docs, ``articles/communication-services/how-tos/call-automation/``): media
streaming ``includes/audio-streaming-quickstart-python.md``; call actions
``actions-for-call-control.md``. Nothing here logs; no error message carries a phone number, an
incoming call context or the service's error text (which may echo either).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from azure.communication.callautomation import (
    AudioFormat,
    CallConnectionProperties,
    CallRejectReason,
    MediaStreamingAudioChannelType,
    MediaStreamingContentType,
    MediaStreamingOptions,
    PhoneNumberIdentifier,
    StreamingTransportType,
    TextSource,
)
from azure.communication.callautomation.aio import CallAutomationClient
from azure.core.credentials_async import AsyncTokenCredential

from reddytalk.errors import ProviderError
from reddytalk.providers.azure_errors import provider_errors

__all__ = ["AcsCallControl"]

# The two formats ACS streams: "PCM 24K mono and PCM 16K mono, with the default being PCM 16K
# mono" (audio-streaming quickstart).
_AUDIO_FORMATS = {16_000: AudioFormat.PCM16_K_MONO, 24_000: AudioFormat.PCM24_K_MONO}


def _media_streaming_options(media_url: str, sample_rate_hz: int) -> MediaStreamingOptions:
    """Bidirectional mixed-audio PCM streaming to ``media_url``, started on answer."""
    audio_format = _AUDIO_FORMATS.get(sample_rate_hz)
    if audio_format is None:
        raise ValueError(f"ACS streams 16000 or 24000 Hz PCM, not {sample_rate_hz}")
    return MediaStreamingOptions(
        transport_url=media_url,
        transport_type=StreamingTransportType.WEBSOCKET,
        content_type=MediaStreamingContentType.AUDIO,
        audio_channel_type=MediaStreamingAudioChannelType.MIXED,
        start_media_streaming=True,
        enable_bidirectional=True,
        audio_format=audio_format,
        enable_dtmf_tones=True,
    )


def _connection_id(properties: CallConnectionProperties) -> str:
    """The call connection id of an answered call (``callConnectionId`` in the 200 body)."""
    if not properties.call_connection_id:
        raise ProviderError("ACS answer returned no call connection id", retryable=False)
    return properties.call_connection_id


class AcsCallControl:
    """Answers, rejects, speaks into, transfers and ends calls through ACS Call Automation.

    Args:
        connection_string: ``endpoint=https://…/;accesskey=…`` (local use and tests). The SDK
            drops the scheme and always talks HTTPS.
        endpoint: The ACS resource endpoint, used with ``credential``.
        credential: An azure-core ``AsyncTokenCredential`` (managed identity in the cloud).
        cognitive_services_endpoint: The Azure AI services endpoint ACS uses to speak
            :meth:`play_text`'s ``TextSource``; sent with every answer.
        source_caller_id: An ACS number to show the transfer target (``sourceCallerIdNumber``,
            new in SDK 1.6); ``None`` shows the caller's own id, as the docs describe.
        client_options: azure-core options for the client (transport, ``retry_total``,
            ``connection_verify``, timeouts). The SDK's own retries are off unless set here:
            retries live once, in the wrapper around every provider.

    Raises:
        ValueError: Neither or both of ``connection_string`` and ``endpoint`` + ``credential``.
    """

    def __init__(
        self,
        *,
        connection_string: str | None = None,
        endpoint: str | None = None,
        credential: AsyncTokenCredential | None = None,
        cognitive_services_endpoint: str | None = None,
        source_caller_id: str | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        # azure-core would otherwise retry up to 10 times (POSTs on 500/503/504 or Retry-After).
        options: dict[str, Any] = {"retry_total": 0, **(client_options or {})}
        if connection_string is not None and endpoint is None and credential is None:
            self._client = CallAutomationClient.from_connection_string(connection_string, **options)
        elif connection_string is None and endpoint is not None and credential is not None:
            self._client = CallAutomationClient(endpoint, credential, **options)
        else:
            raise ValueError("give either connection_string, or endpoint and credential")
        self._cognitive_services_endpoint = cognitive_services_endpoint
        self._source_caller_id = source_caller_id

    async def answer(
        self,
        *,
        incoming_call_context: str,
        callback_url: str,
        media_url: str,
        sample_rate_hz: int,
        operation_context: str,
    ) -> str:
        """Answer with bidirectional PCM media streaming to ``media_url``; the connection id.

        Raises:
            ValueError: ``sample_rate_hz`` is neither 16000 nor 24000 (nothing is sent).
            ProviderError: ACS refused or could not be reached.
        """
        media_streaming = _media_streaming_options(media_url, sample_rate_hz)
        with provider_errors("ACS", "answer"):
            properties = await self._client.answer_call(
                incoming_call_context=incoming_call_context,
                callback_url=callback_url,
                cognitive_services_endpoint=self._cognitive_services_endpoint,
                operation_context=operation_context,
                media_streaming=media_streaming,
            )
        return _connection_id(properties)

    async def reject(self, *, incoming_call_context: str) -> None:
        """Decline a call nobody here should answer, reason ``none`` (the documented default)."""
        with provider_errors("ACS", "reject"):
            await self._client.reject_call(
                incoming_call_context=incoming_call_context,
                call_reject_reason=CallRejectReason.NONE,
            )

    async def play_text(
        self, *, call_connection_id: str, text: str, voice_name: str, operation_context: str
    ) -> None:
        """Have ACS speak ``text`` to everyone in the call (the media stream failed)."""
        # Connection clients share the main client's pipeline: closing one would close it.
        connection = self._client.get_call_connection(call_connection_id)
        with provider_errors("ACS", "play"):
            await connection.play_media(
                TextSource(text=text, voice_name=voice_name), operation_context=operation_context
            )

    async def transfer(
        self, *, call_connection_id: str, to_phone_number: str, operation_context: str
    ) -> None:
        """Hand the call to an E.164 number; ACS then reports CallTransferAccepted/Failed."""
        source = self._source_caller_id
        connection = self._client.get_call_connection(call_connection_id)
        with provider_errors("ACS", "transfer"):
            await connection.transfer_call_to_participant(
                PhoneNumberIdentifier(to_phone_number),
                operation_context=operation_context,
                source_caller_id_number=PhoneNumberIdentifier(source) if source else None,
            )

    async def hang_up(self, *, call_connection_id: str) -> None:
        """End the call for everyone (the SDK's ``terminate`` request)."""
        connection = self._client.get_call_connection(call_connection_id)
        with provider_errors("ACS", "hang up"):
            await connection.hang_up(is_for_everyone=True)

    async def close(self) -> None:
        """Close the client's HTTP session."""
        await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
