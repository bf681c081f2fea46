"""Cloud text-to-speech: Azure Neural voices through the Speech SDK's ``SpeechSynthesizer``.

Format. The synthesizer asks for ``Raw{8,16,24,48}Khz16BitMonoPcm`` (the
``synthesis.context`` message carries ``raw-16khz-16bit-mono-pcm`` and so on): raw
little-endian 16-bit mono PCM at the stream's own rate, so nothing is transcoded. A rate
without a raw format is refused at the call.

Streaming. ``audio_config=None`` and the ``synthesizing`` event: the SDK raises it on its
own thread once per audio message from the service, with that message's bytes in
``result.audio_data``, so audio reaches the caller as it arrives. A
``PullAudioOutputStream`` would deliver the same bytes but needs a thread blocked in
``read()`` for every sentence, and ``stop_speaking_async`` clears its unread data anyway.
The callbacks copy plain values (bytes, the end, a ``CancellationErrorCode`` name) onto
an ``asyncio.Queue`` on the loop through ``call_soon_threadsafe``.

Connections. A synthesizer serializes its requests and raises its events for all of
them, so each sentence takes a synthesizer of its own from a per-rate pool (one
``SpeechConfig`` per rate) and gives it back when done: concurrent calls never share
one, sequential sentences reuse its open websocket. :meth:`AzureNeuralTextToSpeech.warm`
opens the connection ahead (``Connection.open``), before the first sentence; a sentence
sent while that connection is still opening gets a new one (the SDK's choice, seen on
loopback). Releasing a synthesizer closes its websocket and waits for the handshake, so
synthesizers are released on a thread, never on the loop.

Barge-in. A consumer that stops iterating (``aclose``, task cancelled) detaches the
queue at once and stops the synthesis on a thread of its own (``stop_speaking_async``
waits for the SDK, which closes the websocket), then opens a fresh connection so the
synthesizer is warm again when it goes back to the pool.

Errors. A ``canceled`` result is a :class:`ProviderError` naming only the
``CancellationErrorCode`` (the SDK's details may quote the service's answer); retryable
for connection failures, timeouts, 429 and 5xx-like codes. Text goes to the SDK as plain
text (``speak_text_async``, which escapes it into SSML) and never to a log. A stall
after the first audio ends in the SDK's own frame timeout
(``SpeechSynthesis_FrameTimeoutInterval``, at least 10 s); the first-audio bound lives
in :mod:`reddytalk.providers.tts.fallback`.

Tests. ``tests/providers/test_azure_neural_tts.py`` runs the real SDK against
``tests/servers/azure_tts_server.py``, a loopback websocket server speaking the TTS
protocol as the SDK expects it (``SpeechConfig(host="ws://127.0.0.1:PORT")``, as for
Speech containers), plus a live test against Azure when credentials are set.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import azure.cognitiveservices.speech as speechsdk  # type: ignore[import-untyped]

from reddytalk.errors import ProviderError
from reddytalk.providers.azure_errors import speech_canceled_error
from reddytalk.providers.stt.azure_speech import post_to_loop

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

__all__ = ["RAW_PCM_FORMATS", "AzureNeuralTextToSpeech", "canceled_error"]

log = logging.getLogger(__name__)

_Format = speechsdk.SpeechSynthesisOutputFormat

#: The SDK's raw 16-bit mono PCM output format for each rate it has one for.
RAW_PCM_FORMATS: dict[int, Any] = {
    8_000: _Format.Raw8Khz16BitMonoPcm,
    16_000: _Format.Raw16Khz16BitMonoPcm,
    24_000: _Format.Raw24Khz16BitMonoPcm,
    48_000: _Format.Raw48Khz16BitMonoPcm,
}

# What the SDK's callbacks put on a sentence's queue: audio, the end (None), or an error.
_Item = bytes | ProviderError | None


def canceled_error(error_code: str) -> ProviderError:
    """The :class:`ProviderError` for a ``canceled`` event's ``CancellationErrorCode`` name."""
    return speech_canceled_error("Azure TTS synthesis", error_code)


class _Voice:
    """One SDK synthesizer, its connection, and where its events go now.

    The callbacks run on the SDK's threads; ``sink`` is set on the loop for one
    sentence at a time and cleared before the synthesizer is stopped or given back.
    """

    def __init__(self, config: Any) -> None:
        self.synthesizer = speechsdk.SpeechSynthesizer(speech_config=config, audio_config=None)
        self.connection = speechsdk.Connection.from_speech_synthesizer(self.synthesizer)
        self.sink: tuple[asyncio.AbstractEventLoop, asyncio.Queue[_Item]] | None = None
        self.synthesizer.synthesizing.connect(self._on_synthesizing)
        self.synthesizer.synthesis_completed.connect(self._on_completed)
        self.synthesizer.synthesis_canceled.connect(self._on_canceled)

    def _post(self, item: _Item) -> None:
        sink = self.sink
        if sink is not None:
            post_to_loop(sink[0], sink[1].put_nowait, item)

    def _on_synthesizing(self, event: Any) -> None:
        self._post(event.result.audio_data)

    def _on_completed(self, event: Any) -> None:
        self._post(None)

    def _on_canceled(self, event: Any) -> None:
        details = event.result.cancellation_details
        code = details.error_code.name
        if details.reason == speechsdk.CancellationReason.Error:  # not our own stop
            log.warning("azure tts canceled: %s", code)
        self._post(canceled_error(code))

    def close(self) -> None:
        """Disconnect the callbacks (they hold this object: a cycle through native code)."""
        self.sink = None
        self.synthesizer.synthesizing.disconnect_all()
        self.synthesizer.synthesis_completed.disconnect_all()
        self.synthesizer.synthesis_canceled.disconnect_all()


class AzureNeuralTextToSpeech:
    """Speaks with an Azure Neural voice, streamed as raw PCM at the stream's rate.

    Args:
        key: A Speech resource key (with ``region``, ``endpoint`` or ``host``); or
        credential: An azure-core ``TokenCredential`` (managed identity), with
            ``endpoint`` on the resource's custom domain; the SDK refreshes the token.
        region: The resource's region (key only).
        endpoint: The resource's endpoint.
        host: ``protocol://host:port`` of a Speech container (or a loopback server).
        voice: The voice's name, e.g. ``en-US-JennyNeural``.
    """

    def __init__(
        self,
        *,
        key: str | None = None,
        credential: TokenCredential | None = None,
        region: str | None = None,
        endpoint: str | None = None,
        host: str | None = None,
        voice: str = "en-US-JennyNeural",
    ) -> None:
        def new_config() -> Any:
            if credential is not None:
                return speechsdk.SpeechConfig(token_credential=credential, endpoint=endpoint)
            if endpoint is not None:
                return speechsdk.SpeechConfig(subscription=key, endpoint=endpoint)
            if host is not None:
                return speechsdk.SpeechConfig(subscription=key, host=host)
            return speechsdk.SpeechConfig(subscription=key, region=region)

        try:
            new_config()  # settings errors surface here, not on the first sentence
        except ValueError as error:
            raise ProviderError(f"Azure TTS settings: {error}", retryable=False) from None
        self._new_config: Callable[[], Any] = new_config
        self._voice_name = voice
        self._configs: dict[int, Any] = {}
        self._idle: dict[int, list[_Voice]] = {}
        self._stopping: set[threading.Thread] = set()
        self._is_closed = False

    def synthesize(self, text: str, *, sample_rate_hz: int) -> AsyncIterator[bytes]:
        """Yield 16-bit mono PCM at ``sample_rate_hz`` as the service sends it.

        Raises:
            ProviderError: At the call (not retryable) when the SDK has no raw PCM format
                at ``sample_rate_hz``; while iterating when the synthesis is canceled
                (``retryable`` per the ``CancellationErrorCode``), after the audio
                already yielded.
        """
        self._check(sample_rate_hz)
        return self._stream(text, sample_rate_hz)

    async def warm(self, sample_rate_hz: int) -> None:
        """Open a connection for ``sample_rate_hz`` now, so the first sentence skips it.

        Raises:
            ProviderError: Not retryable, for a rate without raw PCM.
        """
        self._check(sample_rate_hz)
        voice = self._take(sample_rate_hz)
        voice.connection.open(True)  # returns before the connection is up
        self._give_back(sample_rate_hz, voice)

    async def aclose(self) -> None:
        """Wait for barged-in sentences to stop, and release every synthesizer."""
        self._is_closed = True
        for thread in list(self._stopping):
            await asyncio.to_thread(thread.join, 5.0)
        voices = [voice for idle in self._idle.values() for voice in idle]
        self._idle.clear()
        await asyncio.to_thread(_release, voices)

    async def _stream(self, text: str, sample_rate_hz: int) -> AsyncIterator[bytes]:
        voice = self._take(sample_rate_hz)
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        voice.sink = (asyncio.get_running_loop(), queue)
        try:
            future = voice.synthesizer.speak_text_async(text)
        except RuntimeError:
            voice.sink = None
            self._give_back(sample_rate_hz, voice)
            raise ProviderError("Azure TTS failed to start", retryable=True) from None
        is_over = False  # the SDK ended the request (completed or canceled)
        carry = b""  # an odd byte: half a sample, completed by the next chunk
        try:
            while True:
                item = await queue.get()
                if item is None:
                    is_over = True
                    break
                if isinstance(item, ProviderError):
                    is_over = True
                    raise item
                data = carry + item
                even = len(data) - len(data) % 2
                carry = data[even:]
                if even:
                    yield data[:even]
        finally:
            voice.sink = None
            if is_over:
                try:  # resolved already; ``get`` frees the SDK's handle of the request
                    await asyncio.to_thread(future.get)
                finally:  # even if cancelled here: a dropped synthesizer closes on the loop
                    self._give_back(sample_rate_hz, voice)
            else:
                self._stop_in_background(sample_rate_hz, voice, future)

    def _check(self, sample_rate_hz: int) -> None:
        if sample_rate_hz not in RAW_PCM_FORMATS:
            raise ProviderError(
                f"Azure TTS has no raw PCM output at {sample_rate_hz} Hz", retryable=False
            )
        if self._is_closed:
            raise ProviderError("Azure TTS is closed", retryable=False)

    def _take(self, sample_rate_hz: int) -> _Voice:
        idle = self._idle.get(sample_rate_hz)
        if idle:
            return idle.pop()
        config = self._configs.get(sample_rate_hz)
        if config is None:
            config = self._new_config()
            config.set_speech_synthesis_output_format(RAW_PCM_FORMATS[sample_rate_hz])
            config.speech_synthesis_voice_name = self._voice_name
            self._configs[sample_rate_hz] = config
        return _Voice(config)

    def _give_back(self, sample_rate_hz: int, voice: _Voice) -> None:
        if self._is_closed:
            threading.Thread(target=_release, args=([voice],), daemon=True).start()
        else:
            self._idle.setdefault(sample_rate_hz, []).append(voice)

    def _stop_in_background(self, sample_rate_hz: int, voice: _Voice, future: Any) -> None:
        """Stop a sentence nobody listens to any more, off the loop and its executor.

        ``stop_speaking_async`` waits for the SDK (seconds while it is still
        connecting), then the request's own future resolves as canceled.
        """
        loop = asyncio.get_running_loop()

        def stop() -> None:
            try:
                voice.synthesizer.stop_speaking_async().get()
                future.get()
                voice.connection.open(True)  # stopping closed the websocket: warm again
            except RuntimeError:
                log.debug("azure tts failed to stop a sentence", exc_info=True)
                voice.close()
            else:
                post_to_loop(loop, self._give_back, sample_rate_hz, voice)
            finally:
                self._stopping.discard(threading.current_thread())

        thread = threading.Thread(target=stop, name="azure-tts-stop", daemon=True)
        self._stopping.add(thread)
        thread.start()


def _release(voices: list[_Voice]) -> None:
    """Close and drop synthesizers, off the loop: releasing one closes its websocket, and
    the SDK waits for the close handshake (seconds if the peer is slow to answer)."""
    for voice in voices:
        voice.close()
    voices.clear()  # the last references: the SDK's handles are released here
