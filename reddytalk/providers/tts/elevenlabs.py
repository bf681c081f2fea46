"""Cloud text-to-speech: ElevenLabs streaming, through the ``elevenlabs`` SDK.

The SDK's ``AsyncElevenLabs().text_to_speech.stream`` posts to
``/v1/text-to-speech/{voice_id}/stream?output_format=pcm_<rate>`` with the key in
the ``xi-api-key`` header and ``{"text", "model_id"}`` as JSON, and yields the
body through httpx ``aiter_bytes(chunk_size)``, ``chunk_size`` from
``request_options`` (1024 unless given). ``pcm_<rate>`` is raw little-endian 16-bit mono PCM at
that rate, so the adapter asks for the stream's own rate and never transcodes:
a rate ElevenLabs does not offer is a ``ValueError`` at the call.

The SDK does not retry streaming requests (``core/http_client.py``: only
``request`` retries); retries and fallback live in
:mod:`reddytalk.providers.tts.fallback`. Neither the text nor the key reaches a
log or an error message: the SDK logger is silent by default, and an ``ApiError``
(whose body may echo the request) is not chained.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import cast

import httpx
from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError
from elevenlabs.core.request_options import RequestOptions

from reddytalk.errors import ProviderError

__all__ = ["PCM_RATES_HZ", "ElevenLabsTextToSpeech"]

#: The ``pcm_*`` output formats ElevenLabs offers (SDK
#: ``TextToSpeechStreamRequestOutputFormat``; 44.1 kHz needs the Pro tier).
PCM_RATES_HZ = frozenset({8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000})


class ElevenLabsTextToSpeech:
    """Speaks with an ElevenLabs voice, streamed as raw PCM at the stream's rate.

    Args:
        api_key: The ElevenLabs API key (sent as ``xi-api-key``).
        voice_id: The voice to speak with; :meth:`with_voice` gives a clinic its own.
        model_id: A low-latency model (``eleven_flash_v2_5``; ElevenLabs quotes ~75 ms model time).
        base_url: The API's base URL (a loopback server in tests).
        timeout_s: Bound on connecting and on each wait for bytes, the first included
            (the SDK applies one number to every phase; the fallback wrapper holds
            the tighter first-audio bound).
        optimize_streaming_latency: ElevenLabs' 0-4 latency trade-off; None leaves
            the service default (4 turns text normalization off: numbers and dates
            may be mispronounced, which a receptionist cannot afford).
    """

    def __init__(
        self,
        *,
        api_key: str,
        voice_id: str,
        model_id: str = "eleven_flash_v2_5",
        base_url: str = "https://api.elevenlabs.io",
        timeout_s: float = 5.0,
        optimize_streaming_latency: int | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("an ElevenLabs API key is required")
        self._voice_id = voice_id
        self._model_id = model_id
        self._latency = optimize_streaming_latency
        self._http = httpx.AsyncClient(timeout=timeout_s)
        # The SDK sends its own ``timeout`` (240 s unless given) with every request,
        # overriding the httpx client's: so it is given here too.
        self._client = AsyncElevenLabs(
            api_key=api_key, base_url=base_url, timeout=timeout_s, httpx_client=self._http
        )

    def with_voice(self, voice_id: str) -> ElevenLabsTextToSpeech:
        """The same account, model and connections, speaking with ``voice_id`` (a clinic's)."""
        clinic_voice = copy.copy(self)
        clinic_voice._voice_id = voice_id
        return clinic_voice

    def synthesize(self, text: str, *, sample_rate_hz: int) -> AsyncIterator[bytes]:
        """Yield 16-bit mono PCM at ``sample_rate_hz`` as ElevenLabs sends it.

        Raises:
            ValueError: At the call, when ElevenLabs has no ``pcm_<sample_rate_hz>``.
            ProviderError: While iterating; ``retryable`` for 408/429/5xx, timeouts
                and broken connections (a stream cut mid-sentence included).
        """
        if sample_rate_hz not in PCM_RATES_HZ:
            raise ValueError(f"ElevenLabs has no PCM output at {sample_rate_hz} Hz")
        return self._stream(text, sample_rate_hz)

    async def aclose(self) -> None:
        """Close the connections (at shutdown; shared with :meth:`with_voice` copies)."""
        await self._http.aclose()

    async def _stream(self, text: str, sample_rate_hz: int) -> AsyncIterator[bytes]:
        # ``chunk_size`` None: httpx yields bytes as they arrive. A number would
        # make the SDK's ``aiter_bytes`` hold audio back until that many bytes came.
        options = cast(RequestOptions, {"chunk_size": None, "max_retries": 0})
        carry = b""  # an odd byte: half a sample, completed by the next chunk
        try:
            async for chunk in self._client.text_to_speech.stream(
                self._voice_id,
                text=text,
                model_id=self._model_id,
                output_format=f"pcm_{sample_rate_hz}",
                optimize_streaming_latency=self._latency,
                request_options=options,
            ):
                data = carry + chunk
                even = len(data) - len(data) % 2
                carry = data[even:]
                if even:
                    yield data[:even]
        except ApiError as error:
            raise _status_error(error.status_code) from None
        except httpx.TimeoutException as error:
            raise ProviderError("ElevenLabs timed out", retryable=True) from error
        except httpx.HTTPError as error:
            name = type(error).__name__
            raise ProviderError(f"ElevenLabs connection failed ({name})", retryable=True) from error
        # A trailing odd byte is half a sample of a truncated body: dropped, not played.


def _status_error(status: int | None) -> ProviderError:
    """The ProviderError for an HTTP error status (408, 429 and 5xx may pass if retried)."""
    retryable = status is None or status in (408, 429) or status >= 500
    return ProviderError(f"ElevenLabs answered {status}", retryable=retryable)
