"""A loopback Azure Speech text-to-speech websocket, as the Speech SDK (1.53) speaks to it.

The SDK, given ``SpeechConfig(host="ws://127.0.0.1:PORT")`` (the form used for Speech
containers), opens ``/cognitiveservices/websocket/v1`` with the key in
``Ocp-Apim-Subscription-Key`` and the ``USP`` subprotocol, then sends text messages
``"<headers>\\r\\n\\r\\n<body>"``:

* ``Path:speech.config`` once per connection (SDK and OS context);
* per sentence, ``Path:synthesis.context`` (JSON; ``synthesis.audio.outputFormat`` is the
  requested format, e.g. ``raw-16khz-16bit-mono-pcm``) and ``Path:ssml`` (the SSML with
  the voice), both with the sentence's ``X-RequestId``;
* ``Path:telemetry`` after a sentence.

It answers, each with the sentence's ``X-RequestId``: a text ``Path:turn.start``, binary
audio messages (a 2-byte big-endian header length, the headers with ``Path:audio``, then
raw audio in the requested format) and a text ``Path:turn.end``. Those were enough for
the SDK to raise ``synthesizing`` per audio message and ``synthesis_completed`` after
``turn.end`` (checked against the SDK; the service's optional ``response`` and
``audio.metadata`` messages are left out).

It speaks a 440 Hz tone at the rate the request asked for, so a test reading the tone
back at the rate it wanted catches audio at the wrong rate; records every connection
and sentence; and can be scripted to delay the first audio, hold after it, close or
drop the connection mid-sentence, or refuse the websocket upgrade with a status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Self
from xml.etree import ElementTree

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.servers.tones import tone

__all__ = ["LoopbackAzureTts", "Recorded", "Script", "Sentence"]

_FORMAT = re.compile(r"raw-(\d+)khz-16bit-mono-pcm")
_SSML_NS = "{http://www.w3.org/2001/10/synthesis}"


@dataclass
class Script:
    """How the server answers the next sentences.

    Attributes:
        chunk_bytes: Audio bytes per audio message (odd splits samples across messages).
        first_byte_delay_s: Wait between ``turn.start`` and the first audio.
        gate: When given, hold after the first audio message until the test sets it.
        close_after_chunks: Close the websocket (1011) after this many audio messages.
        drop_after_chunks: Drop the TCP connection after this many audio messages.
        reject_status: Refuse the websocket upgrade with this HTTP status.
        audio: The PCM to speak for ``(sample_rate_hz, text)``; a tone by default.
    """

    chunk_bytes: int = 3_200
    first_byte_delay_s: float = 0.0
    gate: asyncio.Event | None = None
    close_after_chunks: int | None = None
    drop_after_chunks: int | None = None
    reject_status: int | None = None
    audio: Callable[[int, str], bytes] = field(default=lambda rate, text: tone(rate))


@dataclass
class Sentence:
    """One synthesis request as the server saw it, and how it ended."""

    connection: int
    request_id: str
    output_format: str
    voice: str
    text: str
    sample_rate_hz: int
    sent_bytes: int = 0
    is_finished: bool = False  # turn.end sent
    is_interrupted: bool = False  # the client went away mid-sentence


@dataclass
class Recorded:
    """One websocket connection as the server saw it."""

    path: str
    headers: dict[str, str]
    subprotocol: str | None
    messages: list[tuple[str, dict[str, str], str]] = field(default_factory=list)
    is_closed: bool = False


class LoopbackAzureTts:
    """The server; ``host`` (``ws://127.0.0.1:PORT``) once entered."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self.connections: list[Recorded] = []
        self.sentences: list[Sentence] = []
        self.rejected: list[dict[str, str]] = []
        self.host = ""
        self.changed = asyncio.Condition()
        self._server: Server | None = None

    async def __aenter__(self) -> Self:
        self._server = await serve(
            self._serve,
            "127.0.0.1",
            0,
            subprotocols=["USP"],  # type: ignore[list-item]
            process_request=self._check_upgrade,
        )
        port = self._server.sockets[0].getsockname()[1]
        self.host = f"ws://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def wait_for(self, condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
        """Until ``condition()`` holds after some server event."""
        async with asyncio.timeout(timeout_s), self.changed:
            await self.changed.wait_for(condition)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def _check_upgrade(self, connection: ServerConnection, request: Request) -> Response | None:
        status = self.script.reject_status
        if status is None:
            return None
        self.rejected.append({k.lower(): v for k, v in request.headers.raw_items()})
        return connection.respond(HTTPStatus(status), f"{HTTPStatus(status).phrase}\n")

    async def _serve(self, connection: ServerConnection) -> None:
        request = connection.request
        assert request is not None
        record = Recorded(
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.raw_items()},
            subprotocol=connection.subprotocol,
        )
        self.connections.append(record)
        index = len(self.connections) - 1
        await self._notify()
        context: dict[str, Any] = {}
        speaking: asyncio.Task[None] | None = None
        try:
            async for message in connection:
                assert isinstance(message, str), "the SDK sends only text messages"
                headers, body = _parse(message)
                record.messages.append((headers["Path"], headers, body))
                if headers["Path"] == "synthesis.context":
                    context = json.loads(body)
                elif headers["Path"] == "ssml":
                    # Answer in a task, so a close from the client is read mid-sentence.
                    if speaking is not None:
                        await speaking
                    speaking = asyncio.create_task(
                        self._speak(connection, index, headers["X-RequestId"], context, body)
                    )
                await self._notify()
        except ConnectionClosed:
            pass
        finally:
            record.is_closed = True
            if speaking is not None:
                speaking.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await speaking
            for sentence in self.sentences:
                if sentence.connection == index and not sentence.is_finished:
                    sentence.is_interrupted = True
            await self._notify()

    async def _speak(
        self,
        connection: ServerConnection,
        index: int,
        request_id: str,
        context: dict[str, Any],
        ssml: str,
    ) -> None:
        output_format = context["synthesis"]["audio"]["outputFormat"]
        match = _FORMAT.fullmatch(output_format)
        assert match is not None, f"not a raw PCM format: {output_format}"
        voice_element = ElementTree.fromstring(ssml).find(f"{_SSML_NS}voice")
        assert voice_element is not None
        sentence = Sentence(
            connection=index,
            request_id=request_id,
            output_format=output_format,
            voice=voice_element.get("name", ""),
            text="".join(voice_element.itertext()),
            sample_rate_hz=int(match.group(1)) * 1000,
        )
        self.sentences.append(sentence)
        await self._notify()
        script = self.script
        await connection.send(_text("turn.start", request_id, '{"context":{"serviceTag":"t"}}'))
        await asyncio.sleep(script.first_byte_delay_s)
        audio = script.audio(sentence.sample_rate_hz, sentence.text)
        for n, start in enumerate(range(0, len(audio), script.chunk_bytes)):
            if n == script.close_after_chunks:
                await connection.close(1011, "scripted")
                return
            if n == script.drop_after_chunks:
                assert connection.transport is not None
                connection.transport.abort()
                return
            chunk = audio[start : start + script.chunk_bytes]
            await connection.send(_audio(request_id, chunk))
            sentence.sent_bytes += len(chunk)
            await self._notify()
            if n == 0 and script.gate is not None:
                await script.gate.wait()
            await asyncio.sleep(0)
        await connection.send(_text("turn.end", request_id, ""))
        sentence.is_finished = True


def _parse(message: str) -> tuple[dict[str, str], str]:
    head, _, body = message.partition("\r\n\r\n")
    headers = dict(line.split(":", 1) for line in head.split("\r\n"))
    return headers, body


def _text(path: str, request_id: str, body: str) -> str:
    return (
        f"X-RequestId:{request_id}\r\nContent-Type:application/json; charset=utf-8\r\n"
        f"Path:{path}\r\n\r\n{body}"
    )


def _audio(request_id: str, chunk: bytes) -> bytes:
    head = f"X-RequestId:{request_id}\r\nPath:audio\r\n"
    encoded = head.encode("ascii")
    return len(encoded).to_bytes(2, "big") + encoded + chunk
