"""The ACS media streaming protocol: pure parsing and encoding of JSON messages."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reddytalk.errors import MalformedMessage
from reddytalk.frames import AudioChunk, AudioFormat, DtmfTone
from reddytalk.telephony import acs_media
from reddytalk.telephony.acs_media import (
    STOP_AUDIO,
    encode_audio,
    encode_audio_data,
    encode_audio_metadata,
    encode_dtmf,
    frame_bytes_for,
    parse_inbound,
    parse_outbound,
)

FMT16 = AudioFormat(sample_rate_hz=16_000, channels=1, frame_bytes=640)


def _metadata(**overrides: object) -> str:
    meta: dict[str, object] = {
        "subscriptionId": "sub-1",
        "encoding": "PCM",
        "sampleRate": 16000,
        "channels": 1,
        "length": 640,
    }
    meta.update(overrides)
    return json.dumps({"kind": "AudioMetadata", "audioMetadata": meta})


def _audio(data: str, *, silent: bool = False) -> str:
    return json.dumps(
        {
            "kind": "AudioData",
            "audioData": {
                "timestamp": "2026-01-01T00:00:00Z",
                "participantRawID": "8:acs:abc",
                "data": data,
                "silent": silent,
            },
        }
    )


def test_frame_bytes_are_20_ms_of_16_bit_mono() -> None:
    assert frame_bytes_for(16_000) == 640
    assert frame_bytes_for(24_000) == 960


def test_metadata_16k() -> None:
    assert parse_inbound(_metadata(), audio_format=None) == FMT16


def test_metadata_24k() -> None:
    parsed = parse_inbound(_metadata(sampleRate=24000, length=960), audio_format=None)
    assert parsed == AudioFormat(sample_rate_hz=24_000, channels=1, frame_bytes=960)
    assert isinstance(parsed, AudioFormat)
    assert parsed.frame_ms == 20


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"encoding": "OPUS"}, "PCM"),
        ({"sampleRate": 8000}, "sample rate"),
        ({"sampleRate": "16000"}, "sampleRate"),
        ({"sampleRate": True}, "sampleRate"),
        ({"channels": 2}, "mono"),
        ({"length": 320}, "frame length"),
        ({"sampleRate": 24000, "length": 640}, "frame length"),
    ],
)
def test_bad_metadata_is_malformed(overrides: dict[str, object], why: str) -> None:
    with pytest.raises(MalformedMessage, match=why):
        parse_inbound(_metadata(**overrides), audio_format=None)


def test_audio_data_good_frame() -> None:
    pcm = bytes(range(256)) * 2 + bytes(128)
    assert len(pcm) == 640
    chunk = parse_inbound(_audio(base64.b64encode(pcm).decode()), audio_format=FMT16)
    assert chunk == AudioChunk(pcm=pcm, is_silent=False, participant_raw_id="8:acs:abc")


def test_audio_data_silent_flag_is_kept() -> None:
    chunk = parse_inbound(_audio(base64.b64encode(bytes(640)).decode(), silent=True),
                          audio_format=FMT16)
    assert isinstance(chunk, AudioChunk)
    assert chunk.is_silent


def test_audio_data_bad_base64() -> None:
    with pytest.raises(MalformedMessage, match="base64"):
        parse_inbound(_audio("!!!not base64!!!"), audio_format=FMT16)


def test_audio_data_wrong_size() -> None:
    with pytest.raises(MalformedMessage, match="expected 640"):
        parse_inbound(_audio(base64.b64encode(bytes(320)).decode()), audio_format=FMT16)


def test_audio_data_before_metadata() -> None:
    with pytest.raises(MalformedMessage, match="before AudioMetadata"):
        parse_inbound(_audio(base64.b64encode(bytes(640)).decode()), audio_format=None)


def test_audio_data_missing_data_field() -> None:
    with pytest.raises(MalformedMessage, match="data"):
        parse_inbound(json.dumps({"kind": "AudioData", "audioData": {}}), audio_format=FMT16)


def test_dtmf() -> None:
    message = json.dumps({"kind": "DtmfData", "dtmfData": {"data": "#"}})
    assert parse_inbound(message, audio_format=None) == DtmfTone("#")


def test_unknown_dtmf_tone() -> None:
    message = json.dumps({"kind": "DtmfData", "dtmfData": {"data": "X"}})
    with pytest.raises(MalformedMessage, match="DTMF"):
        parse_inbound(message, audio_format=None)


def test_unknown_kind() -> None:
    with pytest.raises(MalformedMessage, match="unknown kind"):
        parse_inbound(json.dumps({"kind": "Transcription"}), audio_format=FMT16)


def test_non_json() -> None:
    with pytest.raises(MalformedMessage, match="not JSON"):
        parse_inbound("{not json", audio_format=FMT16)


def test_non_utf8_bytes() -> None:
    with pytest.raises(MalformedMessage):
        parse_inbound(b"\xff\xfe\x00garbage", audio_format=FMT16)


def test_json_array() -> None:
    with pytest.raises(MalformedMessage, match="not a JSON object"):
        parse_inbound("[1, 2, 3]", audio_format=FMT16)


def test_encode_audio_round_trips_through_parse_outbound() -> None:
    pcm = bytes(range(256)) * 3 + bytes(192)
    message = encode_audio(pcm)
    assert parse_outbound(message) == pcm
    decoded = json.loads(message)
    assert decoded["Kind"] == "AudioData"
    assert decoded["StopAudio"] is None


def test_stop_audio_has_the_documented_shape() -> None:
    assert parse_outbound(STOP_AUDIO) is None
    assert json.loads(STOP_AUDIO) == {"Kind": "StopAudio", "AudioData": None, "StopAudio": {}}


@pytest.mark.parametrize(
    "text",
    ["nope", "[]", '{"Kind": "Other"}', '{"Kind": "AudioData"}', '{"Kind": "AudioData", '
     '"AudioData": {"Data": "@@"}}', "{}"],
)
def test_bad_outbound_is_malformed(text: str) -> None:
    with pytest.raises(MalformedMessage):
        parse_outbound(text)


@pytest.mark.parametrize("audio_format", [FMT16, AudioFormat(24_000, 1, 960)])
def test_inbound_encoders_round_trip(audio_format: AudioFormat) -> None:
    assert (
        parse_inbound(encode_audio_metadata(audio_format, subscription_id="s"), audio_format=None)
        == audio_format
    )
    pcm = b"\x01\x02" * (audio_format.frame_bytes // 2)
    chunk = parse_inbound(
        encode_audio_data(pcm, timestamp="t", participant_raw_id="caller"),
        audio_format=audio_format,
    )
    assert chunk == AudioChunk(pcm=pcm, is_silent=False, participant_raw_id="caller")
    silent = parse_inbound(
        encode_audio_data(bytes(audio_format.frame_bytes), timestamp="t", participant_raw_id="c"),
        audio_format=audio_format,
    )
    assert isinstance(silent, AudioChunk)
    assert silent.is_silent
    for tone in "0123456789*#":
        assert parse_inbound(encode_dtmf(tone), audio_format=None) == DtmfTone(tone)


@given(st.text())
def test_arbitrary_text_only_ever_raises_malformed_message(text: str) -> None:
    for audio_format in (None, FMT16):
        try:
            parse_inbound(text, audio_format=audio_format)
        except MalformedMessage:
            pass


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=10,
    ),
    st.sampled_from(["AudioMetadata", "AudioData", "DtmfData", None]),
    st.sampled_from(["audioMetadata", "audioData", "dtmfData"]),
)
def test_arbitrary_json_payloads_only_ever_raise_malformed_message(
    payload: object, kind: str | None, key: str
) -> None:
    text = json.dumps({"kind": kind, key: payload})
    for audio_format in (None, FMT16):
        try:
            parse_inbound(text, audio_format=audio_format)
        except MalformedMessage:
            pass


@pytest.mark.parametrize(("is_final", "status"), [(True, "Final"), (False, "Intermediate")])
def test_a_live_transcript_line_has_the_shape_of_acs_transcription_data(
    is_final: bool, status: str
) -> None:
    text = acs_media.encode_transcription(
        'Say "hi" — ok', participant_raw_id=acs_media.RECEPTIONIST_RAW_ID, is_final=is_final
    )
    assert json.loads(text) == {
        "kind": "TranscriptionData",
        "transcriptionData": {
            "text": 'Say "hi" — ok',
            "format": "display",
            "participantRawID": "reddytalk:receptionist",
            "resultStatus": status,
        },
    }
    with pytest.raises(MalformedMessage):  # not a message a caller may send in
        acs_media.parse_inbound(text, audio_format=None)
