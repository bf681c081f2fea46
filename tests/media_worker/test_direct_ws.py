"""The media streams' direct path (media_worker/direct_ws.py) on the real app and server.

The worker is served as production serves it (``server_config``: uvicorn with
``DirectWebSocketProtocol``) and called with the ``websockets`` client as ACS would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
import websockets

from media_worker.__main__ import server_config
from media_worker.app import create_app
from media_worker.direct_ws import DirectWebSocketProtocol
from reddytalk.frames import AudioFormat
from reddytalk.providers.seed import DEMO_PHONE_NUMBER
from reddytalk.settings import Settings
from reddytalk.telephony import acs_media

_CALL = "/calls/direct-1?to=" + DEMO_PHONE_NUMBER.replace("+", "%2B")
_SILENCE = acs_media.encode_audio_data(
    bytes(640), timestamp="2026-11-26T00:00:00Z", participant_raw_id="4:+15555550123"
)


@contextlib.asynccontextmanager
async def _served(data_dir: Path) -> AsyncIterator[tuple[uvicorn.Server, str]]:
    server = uvicorn.Server(server_config(create_app(Settings(data_dir=data_dir, port=0)),
                                          host="127.0.0.1", port=0))  # fmt: skip
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield server, f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def _stream(server: uvicorn.Server) -> DirectWebSocketProtocol:
    (protocol,) = [c for c in server.server_state.connections
                   if isinstance(c, DirectWebSocketProtocol)]  # fmt: skip
    return protocol


async def _greeted(ws: websockets.ClientConnection) -> str:
    await ws.send(acs_media.encode_audio_metadata(AudioFormat(), subscription_id="s-1"))
    return str(await asyncio.wait_for(ws.recv(), 10))  # the greeting's first frame


def test_a_call_s_messages_are_pushed_and_its_frames_written_directly(tmp_path: Path) -> None:
    async def main() -> tuple[int, int, int, bytes | None]:
        async with _served(tmp_path) as (server, url):
            async with websockets.connect(url + _CALL) as ws:
                first = await _greeted(ws)
                stream = _stream(server)
                pushed_before = stream.pushed
                for _ in range(10):
                    await ws.send(_SILENCE)
                await ws.send("not json")  # malformed: skipped, counted, the call goes on
                for _ in range(20):
                    await ws.recv()  # more of the greeting: written, 20 ms apart
                return pushed_before, stream.pushed, stream.written, acs_media.parse_outbound(first)

    pushed_before, pushed, written, first = asyncio.run(main())
    # The metadata came before the session attached (through ASGI's receive); every
    # message after it was pushed: 10 frames and the malformed one.
    assert pushed - pushed_before == 11
    assert written >= 21 and first is not None and len(first) == 640


def test_a_paused_transport_falls_back_to_asgi_send(tmp_path: Path) -> None:
    async def main() -> tuple[bool, bool, int, int]:
        async with _served(tmp_path) as (server, url):
            async with websockets.connect(url + _CALL) as ws:
                await _greeted(ws)
                stream = _stream(server)
                stream.pause_writing()  # the transport's buffer is over its high mark
                written = stream.written
                paused = stream.send_text_now(acs_media.STOP_AUDIO)
                stream.resume_writing()
                resumed = stream.send_text_now(acs_media.STOP_AUDIO)
                return paused, resumed, written, stream.written

    paused, resumed, written_before, written_after = asyncio.run(main())
    assert not paused and resumed
    assert written_after >= written_before + 1
