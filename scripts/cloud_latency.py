"""The cloud-latency profile: stand-ins for Azure Speech, Azure OpenAI and ElevenLabs that
wait as the real services do, so the pipeline's own overhead and its overlap can be
measured without a network (``scripts/bench_latency``, ``scripts/bench_load``).

Each stand-in implements the same port as the adapter it replaces and injects only time:

* :class:`SimulatedSpeechToText`: the final transcript of a turn comes
  ``stt_final_ms`` after the caller's last voiced frame (the recognizer sees the frames
  the pipeline feeds it, and finds that frame by its energy). The text is the caller's
  script, line by line: the bench knows what the caller said. Interim hypotheses come
  every ``stt_interim_every_ms`` of audio, each ``stt_interim_lag_ms`` after the audio
  it covers; ``hypothesis`` gives the turn's words once the latest one reaches the end
  of the speech (as the Azure adapter does with Speech's offsets and durations), and
  they are the final's words.
* :class:`SimulatedChat`: the first token ``llm_first_token_ms`` (by deployment) after
  the request, then ``llm_tokens_per_s`` tokens of about four characters; clauses are cut
  by the adapter's own :class:`ClauseCutter`.
* :class:`SimulatedTextToSpeech`: the first audio ``tts_first_audio_ms`` after the
  request, then audio at ``tts_real_time_factor`` (0.25: a second of speech takes
  250 ms). Each sentence is a square wave whose level names the sentence
  (:meth:`SimulatedTextToSpeech.level_of`), so the caller can tell which sentence a frame
  belongs to, and so whether an answer's first frame is content or an acknowledgement.

The default figures and where they come from:

* ``stt_final_ms = 1000``: Azure Speech's time from the end of speech to the final
  segment in Pipecat's STT benchmark (github.com/pipecat-ai/stt-benchmark, 1000 samples
  of pipecat-ai/smart-turn-data-v3.1: median 1016 ms, p95 1345 ms, p99 1791 ms); interim
  hypotheses about every 100 ms while the caller speaks (issue 6).
* ``stt_interim_lag_ms = 100``: an assumption, for want of a published figure: an
  interim covers audio that left the media worker one network round trip from an Azure
  region and one ~100 ms processing step before.
* ``llm_first_token_ms``: 450 ms for the fast deployment and 800 ms for the stronger one,
  then 50 tokens/s: Azure OpenAI's first-token times for gpt-4o-mini and gpt-4o class
  models as issue 6 gives them from published measurements (400-800 ms).
* ``tts_first_audio_ms = 125``: ElevenLabs Flash v2.5's ~75 ms model time (ElevenLabs'
  model documentation) plus ~50 ms of network from an Azure region.

``LatencyProfile.scaled(2)`` doubles every delay (the issue's "every figure doubled").
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import numpy as np

from reddytalk.audio.pcm import rms_dbfs
from reddytalk.chat_events import ChatEvent, Clause, ClauseCutter, Finished, TextDelta
from reddytalk.frames import Transcript
from reddytalk.ports import RecognitionHints, SpeechRecognizer

__all__ = [
    "LatencyProfile",
    "SimulatedChat",
    "SimulatedSpeechToText",
    "SimulatedTextToSpeech",
]

# The caller's own measure of the end of its speech (scripts/local_caller.py), so that the
# final comes stt_final_ms after the moment the benchmark measures from.
_SILENCE_DBFS = -55.0


@dataclasses.dataclass(frozen=True, slots=True)
class LatencyProfile:
    """The injected delays (ms) and rates; see the module docstring for the sources."""

    stt_final_ms: float = 1000.0
    stt_interim_every_ms: float = 100.0
    stt_interim_lag_ms: float = 100.0
    llm_first_token_ms: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: {"fast": 450.0, "complex": 800.0}
    )
    llm_tokens_per_s: float = 50.0
    tts_first_audio_ms: float = 125.0
    tts_real_time_factor: float = 0.25

    def scaled(self, factor: float) -> LatencyProfile:
        """Every delay times ``factor`` (rates divided by it)."""
        return LatencyProfile(
            stt_final_ms=self.stt_final_ms * factor,
            stt_interim_every_ms=self.stt_interim_every_ms * factor,
            stt_interim_lag_ms=self.stt_interim_lag_ms * factor,
            llm_first_token_ms={k: v * factor for k, v in self.llm_first_token_ms.items()},
            llm_tokens_per_s=self.llm_tokens_per_s / factor,
            tts_first_audio_ms=self.tts_first_audio_ms * factor,
            tts_real_time_factor=min(1.0, self.tts_real_time_factor * factor),
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        data = dataclasses.asdict(self)
        data["llm_first_token_ms"] = dict(self.llm_first_token_ms)
        return data


class _ScriptedRecognizer:
    """One call's recognizer: each turn's text is the script's next line."""

    def __init__(self, script: Sequence[str], profile: LatencyProfile) -> None:
        self._script = list(script)
        self._final_s = profile.stt_final_ms / 1000
        self._every_s = profile.stt_interim_every_ms / 1000
        self._lag_s = profile.stt_interim_lag_ms / 1000
        self._last_voiced: float | None = None
        self._turn_start = 0.0

    def set_hints(self, hints: RecognitionHints) -> None:
        """Hints change nothing: the text is scripted."""

    def start_turn(self) -> None:
        self._last_voiced = None
        # The session feeds the speech's first frames (pre-roll) at once, as it starts.
        self._turn_start = time.monotonic()

    def hypothesis(self, *, trailing_silence_ms: int) -> str:
        """The line, once an interim covering audio up to the end of the speech arrived:
        interims arrive ``lag`` after each ``every`` of audio from the turn's start."""
        now = time.monotonic()
        if self._last_voiced is None or not self._script:
            return ""
        arrived = int((now - self._turn_start - self._lag_s) / self._every_s)
        covered = self._turn_start + arrived * self._every_s
        speech_end = now - trailing_silence_ms / 1000
        return self._script[0] if covered >= speech_end else ""

    def accept(self, pcm: bytes) -> None:
        if rms_dbfs(pcm) > _SILENCE_DBFS:
            # The caller sends a frame as its 20 ms begin and counts its speech as ending
            # when the last voiced frame does: 20 ms after that frame arrives here.
            self._last_voiced = time.monotonic() + 0.020

    def finish_turn(self) -> asyncio.Future[Transcript]:
        loop = asyncio.get_running_loop()
        final: asyncio.Future[Transcript] = loop.create_future()
        text = self._script.pop(0) if self._script else ""
        voiced = self._last_voiced if self._last_voiced is not None else time.monotonic()
        wait_s = max(0.0, voiced + self._final_s - time.monotonic())
        def resolve() -> None:
            if not final.done():
                final.set_result(Transcript(text))

        loop.call_later(wait_s, resolve)
        return final

    def close(self) -> None:
        """Nothing to release."""


class SimulatedSpeechToText:
    """Azure Speech's timing with the caller's script as the text.

    Args:
        scripts: What the callers say, turn by turn: the n-th call opened gets the n-th
            script (round robin), so calls placed at once can book different slots.
        profile: The delays.
    """

    def __init__(self, scripts: Sequence[Sequence[str]], profile: LatencyProfile) -> None:
        self.scripts = [list(script) for script in scripts]
        self._profile = profile
        self._opened = 0

    async def open(
        self, *, sample_rate_hz: int, languages: Sequence[str] = ("en-US",)
    ) -> SpeechRecognizer:
        script = self.scripts[self._opened % len(self.scripts)]
        self._opened += 1
        return _ScriptedRecognizer(script, self._profile)


class SimulatedChat:
    """An Azure OpenAI deployment's timing, answering every request with ``answer``."""

    def __init__(
        self,
        profile: LatencyProfile,
        *,
        answer: str = "We accept most major insurance plans. Is there anything else?",
    ) -> None:
        self._profile = profile
        self._answer = answer
        self.requests: list[str] = []

    async def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]],
        deployment: str,
    ) -> AsyncIterator[ChatEvent]:
        self.requests.append(deployment)
        started = time.perf_counter()
        await asyncio.sleep(self._profile.llm_first_token_ms.get(deployment, 450.0) / 1000)
        first_ms = (time.perf_counter() - started) * 1000
        cutter = ClauseCutter()
        tokens = [self._answer[i : i + 4] for i in range(0, len(self._answer), 4)]
        for n, token in enumerate(tokens):
            if n:
                await asyncio.sleep(1 / self._profile.llm_tokens_per_s)
            yield TextDelta(token)
            for clause in cutter.feed(token):
                yield Clause(clause)
        if (rest := cutter.flush()) is not None:
            yield Clause(rest)
        yield Finished("stop", None, first_ms)


class SimulatedTextToSpeech:
    """A cloud voice's timing: first audio after ``tts_first_audio_ms``, then 100 ms
    chunks at ``tts_real_time_factor``. A sentence lasts 20 ms per character, three times
    faster than a person speaks: only its first audio counts in the latency, and shorter
    answers keep the benchmarks short (the caller waits for each answer to end)."""

    def __init__(self, profile: LatencyProfile) -> None:
        self._profile = profile

    @staticmethod
    def level_of(text: str) -> int:
        """The square wave's level for ``text`` (1000-16999: loud, never silence)."""
        return 1000 + zlib.crc32(text.encode()) % 16_000

    async def synthesize(self, text: str, *, sample_rate_hz: int) -> AsyncIterator[bytes]:
        await asyncio.sleep(self._profile.tts_first_audio_ms / 1000)
        samples = sample_rate_hz * 20 * max(1, len(text)) // 1000
        wave = np.full(samples, self.level_of(text), dtype="<i2")
        wave[1::2] *= -1
        pcm = wave.tobytes()
        chunk = sample_rate_hz // 10 * 2  # 100 ms
        for start in range(0, len(pcm), chunk):
            if start:
                await asyncio.sleep(0.1 * self._profile.tts_real_time_factor)
            yield pcm[start : start + chunk]
