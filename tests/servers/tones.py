"""Test audio: a sine tone as 16-bit PCM, and reading its frequency back (the check that
audio asked for at one rate was delivered at that rate)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["TONE_HZ", "frequency_hz", "tone"]

TONE_HZ = 440


def tone(sample_rate_hz: int, seconds: float = 0.5) -> bytes:
    """A 440 Hz sine as 16-bit little-endian PCM at ``sample_rate_hz``."""
    t = np.arange(int(sample_rate_hz * seconds)) / sample_rate_hz
    return (np.sin(2 * math.pi * TONE_HZ * t) * 12_000).astype("<i2").tobytes()


def frequency_hz(pcm: bytes, sample_rate_hz: int) -> float:
    """The frequency of a sine in ``pcm`` read at ``sample_rate_hz`` (rising zero crossings)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
    rising = np.flatnonzero((samples[:-1] < 0) & (samples[1:] >= 0))
    return float((len(rising) - 1) * sample_rate_hz / (rising[-1] - rising[0]))
