"""The ACS bidirectional media streaming protocol: JSON text messages over a WebSocket.

Shapes as documented in azure-docs
``articles/communication-services/how-tos/call-automation/includes/audio-streaming-quickstart-python.md``
("Handling audio streams in your websocket server", "Sending audio streaming data"):

* inbound, first: ``{"kind": "AudioMetadata", "audioMetadata": {"subscriptionId", "encoding":
  "PCM", "sampleRate": 16000, "channels": 1, "length": 640}}``
* inbound: ``{"kind": "AudioData", "audioData": {"timestamp", "participantRawID", "data",
  "silent"}}`` with ``data`` base64 16-bit little-endian mono PCM, 20 ms per message
* inbound with DTMF on: ``{"kind": "DtmfData", "dtmfData": {"data": "3"}}``
* outbound (PascalCase, as documented): ``{"Kind": "AudioData", "AudioData": {"Data": b64},
  "StopAudio": null}`` and ``{"Kind": "StopAudio", "AudioData": null, "StopAudio": {}}``

Parsing is pure: bad input raises :class:`MalformedMessage` naming what was wrong,
never echoing audio content.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

import orjson

from reddytalk.errors import MalformedMessage
from reddytalk.frames import AudioChunk, AudioFormat, DtmfTone

__all__ = [
    "RECEPTIONIST_RAW_ID",
    "STOP_AUDIO",
    "SUPPORTED_SAMPLE_RATES_HZ",
    "InboundMessage",
    "encode_audio",
    "encode_audio_data",
    "encode_audio_metadata",
    "encode_dtmf",
    "encode_transcription",
    "frame_bytes_for",
    "parse_inbound",
    "parse_outbound",
]

SUPPORTED_SAMPLE_RATES_HZ = (16_000, 24_000)
_DTMF_TONES = frozenset("0123456789*#ABCD")

STOP_AUDIO = json.dumps({"Kind": "StopAudio", "AudioData": None, "StopAudio": {}})
"""Outbound: flush the audio ACS has queued for playback (used on barge-in)."""

InboundMessage = AudioFormat | AudioChunk | DtmfTone

RECEPTIONIST_RAW_ID = "reddytalk:receptionist"
"""The ``participantRawID`` of the receptionist's lines in a live transcript."""


def frame_bytes_for(sample_rate_hz: int) -> int:
    """Bytes in one 20 ms frame of 16-bit mono PCM (640 at 16 kHz, 960 at 24 kHz)."""
    return sample_rate_hz // 50 * 2


def _field(obj: dict[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise MalformedMessage(f"{name!r} missing or not {kind.__name__}")
    return value


def parse_inbound(text: str | bytes, *, audio_format: AudioFormat | None) -> InboundMessage:
    """Parse one inbound message.

    Args:
        text: The WebSocket text message.
        audio_format: The stream's format once ``AudioMetadata`` was seen (frame sizes
            are checked against it), or None before.

    Returns:
        An ``AudioFormat`` for metadata, an ``AudioChunk`` for audio, a ``DtmfTone``.

    Raises:
        MalformedMessage: Bad JSON, an unknown kind, bad base64, or a wrong frame size.
    """
    try:
        message = orjson.loads(text)  # every 20 ms of every call: about 4x json.loads
    except orjson.JSONDecodeError as error:
        raise MalformedMessage("not JSON") from error
    if not isinstance(message, dict):
        raise MalformedMessage("not a JSON object")
    kind = message.get("kind")
    if kind == "AudioMetadata":
        return _parse_metadata(_field(message, "audioMetadata", dict))
    if kind == "AudioData":
        return _parse_audio(_field(message, "audioData", dict), audio_format)
    if kind == "DtmfData":
        tone = _field(_field(message, "dtmfData", dict), "data", str)
        if tone not in _DTMF_TONES:
            raise MalformedMessage("unknown DTMF tone")
        return DtmfTone(tone)
    raise MalformedMessage(f"unknown kind {_kind_name(kind)}")


def _parse_metadata(meta: dict[str, Any]) -> AudioFormat:
    if meta.get("encoding") != "PCM":
        raise MalformedMessage("encoding is not PCM")
    rate = _field(meta, "sampleRate", int)
    if rate not in SUPPORTED_SAMPLE_RATES_HZ:
        raise MalformedMessage(f"unsupported sample rate {rate}")
    channels = _field(meta, "channels", int)
    if channels != 1:
        raise MalformedMessage("only mono is supported")
    length = meta.get("length", frame_bytes_for(rate))
    if length != frame_bytes_for(rate):
        raise MalformedMessage(f"frame length {length} is not 20 ms at {rate} Hz")
    return AudioFormat(sample_rate_hz=rate, channels=1, frame_bytes=length)


def _parse_audio(audio: dict[str, Any], audio_format: AudioFormat | None) -> AudioChunk:
    if audio_format is None:
        raise MalformedMessage("AudioData before AudioMetadata")
    try:
        pcm = binascii.a2b_base64(_field(audio, "data", str), strict_mode=True)
    except binascii.Error as error:
        raise MalformedMessage("data is not base64") from error
    if len(pcm) != audio_format.frame_bytes:
        raise MalformedMessage(f"frame of {len(pcm)} bytes, expected {audio_format.frame_bytes}")
    return AudioChunk(
        pcm=pcm,
        is_silent=bool(audio.get("silent", False)),
        participant_raw_id=str(audio.get("participantRawID", "")),
    )


def encode_audio(pcm: bytes) -> str:
    """Outbound ``AudioData`` message for one frame of PCM."""
    data = base64.b64encode(pcm).decode("ascii")
    return '{"Kind":"AudioData","AudioData":{"Data":"' + data + '"},"StopAudio":null}'


def parse_outbound(text: str) -> bytes | None:
    """The caller's side: PCM of an outbound ``AudioData`` message, None for ``StopAudio``.

    Raises:
        MalformedMessage: Anything else.
    """
    try:
        message = json.loads(text)
        kind = message["Kind"]
        if kind == "StopAudio":
            return None
        if kind == "AudioData":
            return base64.b64decode(message["AudioData"]["Data"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise MalformedMessage("bad outbound message") from error
    raise MalformedMessage(f"unknown outbound kind {_kind_name(kind)}")


def encode_audio_metadata(audio_format: AudioFormat, *, subscription_id: str) -> str:
    """Inbound ``AudioMetadata``, as ACS sends it first (the local caller uses this)."""
    return json.dumps(
        {
            "kind": "AudioMetadata",
            "audioMetadata": {
                "subscriptionId": subscription_id,
                "encoding": "PCM",
                "sampleRate": audio_format.sample_rate_hz,
                "channels": audio_format.channels,
                "length": audio_format.frame_bytes,
            },
        }
    )


def encode_audio_data(pcm: bytes, *, timestamp: str, participant_raw_id: str) -> str:
    """Inbound ``AudioData``, as ACS sends it (the local caller uses this)."""
    return json.dumps(
        {
            "kind": "AudioData",
            "audioData": {
                "timestamp": timestamp,
                "participantRawID": participant_raw_id,
                "data": base64.b64encode(pcm).decode("ascii"),
                "silent": not any(pcm),
            },
        }
    )


def encode_dtmf(tone: str) -> str:
    """Inbound ``DtmfData`` (the local caller uses this)."""
    return json.dumps({"kind": "DtmfData", "dtmfData": {"data": tone}})


def encode_transcription(text: str, *, participant_raw_id: str, is_final: bool) -> str:
    """Outbound ``TranscriptionData``: one line of the live transcript, for a local caller.

    Not part of ACS's media streaming protocol, and never sent to ACS: the media worker
    sends it only on a stream whose URL asks for it (``transcript=1``, which the browser
    softphone's local phone line adds). Its shape is ACS's real-time transcription
    message (azure-docs ``how-tos/call-automation/real-time-transcription-tutorial.md``):
    ``{"kind": "TranscriptionData", "transcriptionData": {"text", "format": "display",
    "participantRawID", "resultStatus": "Intermediate" | "Final"}}``; the speaker is
    told by ``participantRawID`` (:data:`RECEPTIONIST_RAW_ID` for the receptionist).
    """
    return json.dumps(
        {
            "kind": "TranscriptionData",
            "transcriptionData": {
                "text": text,
                "format": "display",
                "participantRawID": participant_raw_id,
                "resultStatus": "Final" if is_final else "Intermediate",
            },
        }
    )


def _kind_name(kind: object) -> str:
    """A kind fit for a log line: a short identifier as is, anything else withheld."""
    if isinstance(kind, str) and re.fullmatch(r"[A-Za-z]{1,32}", kind):
        return repr(kind)
    return "(not an identifier; withheld)"
