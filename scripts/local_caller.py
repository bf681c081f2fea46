"""The local caller: places a scripted call to the media worker over ACS's protocol.

It behaves as ACS does towards the media worker: ``AudioMetadata`` first, then a
20 ms ``AudioData`` frame every 20 ms in real time (silence between its lines),
and it plays a scripted caller whose lines espeak-ng speaks in a voice other than
the receptionist's. It listens to each answer until it ends, records both sides to
a stereo WAV (left: caller, right: receptionist), and reports the transcript, the
outcome and the latency of every turn.

Scenario files (YAML) are documented in the README ("Scenario files").
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
import uuid
import wave
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import websockets
import yaml

from reddytalk.audio.pcm import frames_of, rms_dbfs
from reddytalk.errors import MalformedMessage
from reddytalk.frames import AudioFormat
from reddytalk.providers.tts.espeak import EspeakTextToSpeech
from reddytalk.telephony import acs_media

__all__ = ["CallReport", "Scenario", "load_scenario", "place_call"]

_SILENCE_DBFS = -55.0
_ANSWER_END_GAP_S = 0.6
_CALLER_RAW_ID = "4:+15555550123"


@dataclass(frozen=True)
class Step:
    """One line of the caller: what to say and when."""

    say: str
    pause_ms: int = 400
    barge_in_after_ms: int | None = None


@dataclass(frozen=True)
class Scenario:
    """A scripted call."""

    name: str
    dial: str
    steps: tuple[Step, ...]
    sample_rate_hz: int = 16_000
    caller_voice: str = "en-us+f2"
    expect: dict[str, Any] = field(default_factory=dict)


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario file; a bad file raises ValueError naming the problem."""
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise ValueError(f"{path}: a scenario needs a 'steps' list")
    steps = []
    for n, raw in enumerate(data["steps"], 1):
        if not isinstance(raw, dict) or not isinstance(raw.get("say"), str):
            raise ValueError(f"{path}: step {n} needs 'say: <text>'")
        steps.append(
            Step(
                say=raw["say"],
                pause_ms=int(raw.get("pause_ms", 400)),
                barge_in_after_ms=raw.get("barge_in_after_ms"),
            )
        )
    rate = int(data.get("sample_rate_hz", 16_000))
    if rate not in acs_media.SUPPORTED_SAMPLE_RATES_HZ:
        raise ValueError(f"{path}: sample_rate_hz must be 16000 or 24000")
    return Scenario(
        name=str(data.get("name", path.stem)),
        dial=str(data.get("dial", "+15550100200")),
        steps=tuple(steps),
        sample_rate_hz=rate,
        caller_voice=str(data.get("caller_voice", "en-us+f2")),
        expect=dict(data.get("expect") or {}),
    )


@dataclass
class TurnReport:
    """One caller line and the answer to it, as the caller measured them."""

    said: str
    speech_end_s: float = 0.0
    answer_start_s: float | None = None
    answer_first_sound_s: float | None = None
    answer_first_content_s: float | None = None
    """The first frame the caller's ``is_content`` accepts (``place_call``), if given."""
    barged_in: bool = False
    answer_pcm: bytes = field(default=b"", repr=False)
    """The receptionist's audio from the end of this line to the end of the next one."""

    @property
    def voice_to_voice_ms(self) -> float | None:
        """End of the caller's speech → first sound of the answer."""
        if self.answer_first_sound_s is None:
            return None
        return round((self.answer_first_sound_s - self.speech_end_s) * 1000, 1)


@dataclass
class CallReport:
    """Everything the caller saw of one call."""

    call_id: str
    scenario: str
    greeting_first_sound_ms: float | None = None
    turns: list[TurnReport] = field(default_factory=list)
    stop_audio_count: int = 0
    hung_up_by: str = "caller"


class _Line:
    """The caller's side of the WebSocket: a real-time frame clock and a recorder."""

    def __init__(
        self, ws: Any, audio_format: AudioFormat, *, answer_end_gap_s: float = _ANSWER_END_GAP_S
    ) -> None:
        self.ws = ws
        self.format = audio_format
        self.answer_end_gap_s = answer_end_gap_s
        self.t0 = time.monotonic()
        self.outgoing: list[bytes] = []
        self.caller_track: list[bytes] = []
        self.sent_at: list[float] = []  # when each frame of caller_track went out
        self.received: list[tuple[float, bytes]] = []
        self.stop_audio: list[float] = []
        self.closed = asyncio.Event()
        self._silence = bytes(audio_format.frame_bytes)

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def send_loop(self) -> None:
        tick = 0
        frame_s = 0.02
        while not self.closed.is_set():
            frame = self.outgoing.pop(0) if self.outgoing else self._silence
            self.caller_track.append(frame)
            self.sent_at.append(self.now())
            stamp = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
            try:
                await self.ws.send(
                    acs_media.encode_audio_data(
                        frame, timestamp=stamp, participant_raw_id=_CALLER_RAW_ID
                    )
                )
            except websockets.ConnectionClosed:
                self.closed.set()
                return
            tick += 1
            delay = self.t0 + tick * frame_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def receive_loop(self) -> None:
        try:
            async for message in self.ws:
                try:
                    pcm = acs_media.parse_outbound(message)
                except MalformedMessage:
                    continue
                if pcm is None:
                    self.stop_audio.append(self.now())
                else:
                    self.received.append((self.now(), pcm))
        except websockets.ConnectionClosed:
            pass
        self.closed.set()

    def first_sound_after(self, t: float) -> tuple[float | None, float | None]:
        start = sound = None
        for at, pcm in self.received:
            if at < t:
                continue
            start = at if start is None else start
            if rms_dbfs(pcm) > _SILENCE_DBFS:
                return start, at
        return start, sound

    async def wait_answer_start(self, since: float, timeout_s: float = 20.0) -> None:
        """Wait until audio arrives after ``since``."""
        deadline = self.now() + timeout_s
        while self.now() < deadline and not self.closed.is_set():
            if self.received and self.received[-1][0] >= since:
                return
            await asyncio.sleep(0.01)

    async def wait_answer_end(self, since: float, timeout_s: float = 20.0) -> None:
        """Wait until an answer started after ``since`` and then stopped arriving."""
        deadline = self.now() + timeout_s
        while self.now() < deadline and not self.closed.is_set():
            last = self.received[-1][0] if self.received else -1.0
            if last >= since and self.now() - last >= self.answer_end_gap_s:
                return
            await asyncio.sleep(0.02)

    def write_wav(self, path: Path) -> None:
        rate = self.format.sample_rate_hz
        frame_bytes = self.format.frame_bytes
        total = max(len(self.caller_track), int((self.now() + 0.1) / 0.02))
        right = bytearray(total * frame_bytes)
        cursor = 0
        for at, pcm in self.received:
            # received frames are paced by the worker; keep them contiguous when early
            index = max(cursor, int(at / 0.02))
            if index < total:
                right[index * frame_bytes : (index + 1) * frame_bytes] = pcm
            cursor = index + 1
        left = b"".join(self.caller_track).ljust(total * frame_bytes, b"\0")
        import numpy as np

        stereo = np.empty(total * frame_bytes, dtype="<i2")
        stereo[0::2] = np.frombuffer(left[: total * frame_bytes], dtype="<i2")
        stereo[1::2] = np.frombuffer(bytes(right), dtype="<i2")
        with wave.open(str(path), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(stereo.tobytes())


def _speech_end(frames: list[bytes]) -> int:
    """Index after the last frame with speech in it (espeak pads with silence)."""
    for i in range(len(frames) - 1, -1, -1):
        if rms_dbfs(frames[i]) > _SILENCE_DBFS:
            return i + 1
    return 0


async def place_call(
    scenario: Scenario,
    *,
    url: str,
    wav_path: Path | None = None,
    is_content: Callable[[bytes], bool] | None = None,
    answer_end_gap_s: float = _ANSWER_END_GAP_S,
) -> CallReport:
    """Call the media worker at ``url`` (``ws://host:port``) and play ``scenario``.

    ``is_content`` tells an answer's words from an acknowledgement ("One moment.") by a
    frame; with it, each turn also records the first content frame after the caller's
    speech (the benchmarks' voices mark their sentences in their audio).
    ``answer_end_gap_s``: the silence after which the caller takes an answer as over and
    says its next line (longer when a model thinks after "Let me check.").
    """
    audio_format = AudioFormat(
        sample_rate_hz=scenario.sample_rate_hz,
        frame_bytes=acs_media.frame_bytes_for(scenario.sample_rate_hz),
    )
    tts = EspeakTextToSpeech(voice=scenario.caller_voice, words_per_minute=160)
    lines = []
    for step in scenario.steps:
        pcm = b"".join(
            [c async for c in tts.synthesize(step.say, sample_rate_hz=audio_format.sample_rate_hz)]
        )  # noqa: E501
        lines.append(frames_of(pcm, audio_format.frame_bytes))
    call_id = uuid.uuid4().hex
    report = CallReport(call_id=call_id, scenario=scenario.name)
    target = f"{url.rstrip('/')}/calls/{call_id}?to={scenario.dial.replace('+', '%2B')}"
    async with websockets.connect(target, max_size=1 << 20) as ws:
        await ws.send(acs_media.encode_audio_metadata(audio_format, subscription_id=call_id))
        line = _Line(ws, audio_format, answer_end_gap_s=answer_end_gap_s)
        async with asyncio.TaskGroup() as tasks:
            sender = tasks.create_task(line.send_loop(), name="send")
            receiver = tasks.create_task(line.receive_loop(), name="receive")
            since = 0.0  # the greeting
            for step, frames in zip(scenario.steps, lines, strict=True):
                if step.barge_in_after_ms is None:
                    await line.wait_answer_end(since)
                    await asyncio.sleep(step.pause_ms / 1000)
                else:
                    await line.wait_answer_start(since)
                    await asyncio.sleep(step.barge_in_after_ms / 1000)
                if line.closed.is_set():
                    break
                turn = TurnReport(said=step.say, barged_in=step.barge_in_after_ms is not None)
                queued_at = line.now() + 0.02 * len(line.outgoing)
                first_index = len(line.caller_track) + len(line.outgoing)
                line.outgoing.extend(frames)
                voiced = _speech_end(frames)
                turn.speech_end_s = queued_at + 0.02 * voiced  # an estimate, until sent
                report.turns.append(turn)
                await asyncio.sleep(max(0.0, turn.speech_end_s - line.now()))
                if voiced:  # the end of the last voiced frame, as it went out
                    last = first_index + voiced - 1
                    # Polled (at most a frame or two): the send loop keeps no per-frame events.
                    while len(line.sent_at) <= last and not line.closed.is_set():  # noqa: ASYNC110
                        await asyncio.sleep(0.005)
                    if len(line.sent_at) > last:
                        turn.speech_end_s = line.sent_at[last] + 0.02
                since = turn.speech_end_s
            await line.wait_answer_end(since)
            _, sound = line.first_sound_after(0.0)
            report.greeting_first_sound_ms = None if sound is None else round(sound * 1000, 1)
            ends = [turn.speech_end_s for turn in report.turns] + [float("inf")]
            for turn, until in zip(report.turns, ends[1:], strict=True):
                turn.answer_start_s, turn.answer_first_sound_s = line.first_sound_after(
                    turn.speech_end_s
                )
                turn.answer_pcm = b"".join(
                    pcm for at, pcm in line.received if turn.speech_end_s <= at < until
                )
                if is_content is not None:
                    turn.answer_first_content_s = next(
                        (at for at, pcm in line.received
                         if turn.speech_end_s <= at < until and is_content(pcm)),
                        None,
                    )  # fmt: skip
            if not line.closed.is_set():
                await asyncio.sleep(0.5)
            report.hung_up_by = "receptionist" if line.closed.is_set() else "caller"
            line.closed.set()
            await ws.close()
            sender.cancel()
            receiver.cancel()
        report.stop_audio_count = len(line.stop_audio)
        if wav_path is not None:
            wav_path.parent.mkdir(parents=True, exist_ok=True)
            line.write_wav(wav_path)
    return report


def report_json(report: CallReport) -> dict[str, Any]:
    """The caller's report as plain JSON data."""
    data = asdict(report)
    for turn, raw in zip(report.turns, data["turns"], strict=True):
        raw["voice_to_voice_ms"] = turn.voice_to_voice_ms
        del raw["answer_pcm"]
    return data


def main(argv: list[str] | None = None) -> int:
    """``scripts/call --scenario FILE [--json] [--url ws://127.0.0.1:8765]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, required=True)
    parser.add_argument("--url", default="ws://127.0.0.1:8765")
    parser.add_argument("--wav", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    scenario = load_scenario(args.scenario)
    report = asyncio.run(place_call(scenario, url=args.url, wav_path=args.wav))
    print(json.dumps(report_json(report), indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
