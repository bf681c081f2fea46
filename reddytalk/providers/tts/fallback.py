"""Text-to-speech with a fallback voice and a circuit breaker: the one TTS wrapper.

The primary (ElevenLabs) speaks unless it fails before its first audio or its
first audio is later than ``first_audio_timeout_ms``; then the secondary (Azure
Neural, espeak-ng) speaks the same text within the same ``synthesize`` call, so
the caller's silence is at most the bound plus the secondary's first audio.

Once the primary's audio has started, a failure is not retried on the secondary:
the caller has heard the start of the sentence, and hearing it again in another
voice is worse than losing its end. The ``ProviderError`` is raised after the
audio already yielded; the call session logs it, keeps what was said and goes on
to the next sentence (``reddytalk.calls.session``).

A :class:`CircuitBreaker` skips a primary that failed ``failure_threshold`` times
in a row for ``cool_down_ms``, so a dead service costs the bound once per
cool-down rather than on every sentence; after the cool-down one sentence tries
the primary again (half-open) while others use the secondary. One breaker may be
shared by the wrappers of every clinic's voice: the service is the same.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

from reddytalk.errors import ProviderError
from reddytalk.ports import TextToSpeech

__all__ = ["CircuitBreaker", "FallbackTextToSpeech", "close_stream"]

log = logging.getLogger(__name__)


class CircuitBreaker:
    """Counts a provider's consecutive failures and says whether to try it.

    closed → (``failure_threshold`` failures in a row) → open → (``cool_down_ms``)
    → half-open: one trial; its success closes, its failure opens again.

    Args:
        failure_threshold: Consecutive failures that open the breaker.
        cool_down_ms: How long an open breaker skips the provider.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cool_down_ms: int = 30_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self._threshold = failure_threshold
        self._cool_down_s = cool_down_ms / 1000
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._is_trial_running = False

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open``."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self._cool_down_s:
            return "open"
        return "half-open"

    def allows_attempt(self) -> bool:
        """Whether to try the provider now; in half-open, True once until the trial ends."""
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self._is_trial_running:
            return False
        self._is_trial_running = True
        return True

    def record_success(self) -> None:
        """The provider answered: close."""
        self._failures = 0
        self._opened_at = None
        self._is_trial_running = False

    def record_failure(self) -> None:
        """The provider failed: count it, and open (again) at the threshold or after a trial."""
        self._failures += 1
        if self._is_trial_running or self._failures >= self._threshold:
            if self._opened_at is None or self._is_trial_running:
                log.warning("tts primary breaker opened after %d failures", self._failures)
            self._opened_at = self._clock()
        self._is_trial_running = False

    def abandon_attempt(self) -> None:
        """The attempt ended without a verdict (cancelled by barge-in): count nothing."""
        self._is_trial_running = False


class FallbackTextToSpeech:
    """Speaks with ``primary``, falling back to ``secondary`` before the first audio.

    Args:
        primary: The preferred voice (cloud).
        secondary: The voice used when the primary fails or is late to start.
        first_audio_timeout_ms: How long to wait for the primary's first audio.
        breaker: The primary's circuit breaker (a fresh one by default).
    """

    def __init__(
        self,
        primary: TextToSpeech,
        secondary: TextToSpeech,
        *,
        first_audio_timeout_ms: int = 300,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._primary = primary
        self._secondary = secondary
        self._bound_ms = first_audio_timeout_ms
        self._bound_s = first_audio_timeout_ms / 1000
        self.breaker = breaker if breaker is not None else CircuitBreaker()

    @property
    def primary(self) -> TextToSpeech:
        """The preferred voice."""
        return self._primary

    def with_primary(self, primary: TextToSpeech) -> FallbackTextToSpeech:
        """Another primary (a clinic's own voice on the same service) with the same
        fallback, bound and circuit breaker: the service's health is one."""
        return FallbackTextToSpeech(
            primary, self._secondary, first_audio_timeout_ms=self._bound_ms, breaker=self.breaker
        )

    async def synthesize(self, text: str, *, sample_rate_hz: int) -> AsyncIterator[bytes]:
        """Yield PCM from the primary, or all of it from the secondary if the primary
        failed or was late before its first audio.

        Raises:
            ProviderError: The secondary failed too, or the primary failed after its
                audio started (what was yielded stands; the rest is not spoken).
        """
        if self.breaker.allows_attempt():
            stream = self._primary.synthesize(text, sample_rate_hz=sample_rate_hz)
            first: bytes | None = None
            try:
                async with asyncio.timeout(self._bound_s):
                    async for chunk in stream:
                        if chunk:
                            first = chunk
                            break
                reason = "no audio" if first is None else ""
            except TimeoutError:
                reason = "first audio late"
            except ProviderError as error:
                reason = f"failed: {error}"
            except BaseException:  # cancelled (barge-in) or a caller's error: no verdict
                self.breaker.abandon_attempt()
                await close_stream(stream)
                raise
            if first is None:
                await close_stream(stream)
                self.breaker.record_failure()
                log.warning("tts primary %s; speaking with the fallback voice", reason)
            else:
                self.breaker.record_success()
                yield first
                try:
                    async for chunk in stream:
                        yield chunk
                except ProviderError:
                    self.breaker.record_failure()
                    raise
                finally:
                    await close_stream(stream)
                return
        async for chunk in self._secondary.synthesize(text, sample_rate_hz=sample_rate_hz):
            yield chunk


async def close_stream(stream: AsyncIterator[bytes]) -> None:
    """Close a voice's stream we stopped reading (an async generator: its ``finally``
    releases the request); a stream that fails while closing is only logged."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # a stream that fails while closing has nothing left to say
            log.debug("tts primary stream failed while closing", exc_info=True)
