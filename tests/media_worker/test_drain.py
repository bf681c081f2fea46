"""A media worker asked to stop lets its calls finish (real app, real uvicorn, loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import websockets

from media_worker.__main__ import server_config
from media_worker.app import create_app
from media_worker.drain import DrainingServer
from reddytalk.providers.seed import DEMO_PHONE_NUMBER
from reddytalk.settings import Settings

_CALL = "/calls/{}?to=" + DEMO_PHONE_NUMBER.replace("+", "%2B")


@contextlib.asynccontextmanager
async def _serve(data_dir: Path, timeout_s: float) -> AsyncIterator[_Served]:
    app = create_app(Settings(data_dir=data_dir, port=0))
    config = server_config(app, host="127.0.0.1", port=0)
    server = DrainingServer(config, drain=app.state.drain, timeout_s=timeout_s)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield _Served(server, f"127.0.0.1:{port}", task)
    finally:
        server.force_exit = server.should_exit = True
        await task


@dataclass
class _Served:
    server: DrainingServer
    address: str
    task: asyncio.Task[None]

    async def stopped(self, timeout_s: float) -> None:
        """Until the server has shut down on its own."""
        await asyncio.wait_for(asyncio.shield(self.task), timeout=timeout_s)


async def _health(address: str) -> tuple[int, dict[str, object]]:
    def get() -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(f"http://{address}/healthz", timeout=3) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    return await asyncio.to_thread(get)


async def _greeted(call: websockets.ClientConnection) -> None:
    await call.send(json.dumps({"kind": "AudioMetadata", "audioMetadata": {
        "subscriptionId": "s", "encoding": "PCM", "sampleRate": 16000, "channels": 1,
        "length": 640}}))  # fmt: skip
    await asyncio.wait_for(call.recv(), timeout=5)  # the first frame of the greeting


def test_a_stop_signal_drains_the_calls_in_progress_before_exiting(tmp_path: Path) -> None:
    async def main() -> None:
        async with _serve(tmp_path, timeout_s=30) as served:
            address = served.address
            assert await _health(address) == (200, {"status": "ok", "calls": 0})
            async with websockets.connect(
                f"ws://{address}{_CALL.format('c1')}", close_timeout=1
            ) as call:
                await _greeted(call)
                served.server.handle_exit(signal.SIGTERM, None)
                assert await _health(address) == (503, {"status": "draining", "calls": 1})
                with pytest.raises(websockets.InvalidStatus):  # new calls go elsewhere
                    async with websockets.connect(f"ws://{address}{_CALL.format('c2')}"):
                        pass
                await asyncio.sleep(0.5)
                assert not served.task.done()  # the call in progress keeps its line
                await call.recv()  # and keeps hearing the receptionist
            await served.stopped(timeout_s=5)  # the caller hung up: the server stops

    asyncio.run(main())


def test_a_drain_that_outlives_its_deadline_stops_anyway(tmp_path: Path) -> None:
    async def main() -> None:
        async with _serve(tmp_path, timeout_s=0.5) as served:
            async with websockets.connect(f"ws://{served.address}{_CALL.format('c1')}") as call:
                await _greeted(call)
                served.server.handle_exit(signal.SIGTERM, None)
                await served.stopped(timeout_s=5)
                with pytest.raises(websockets.ConnectionClosed):
                    while True:
                        await asyncio.wait_for(call.recv(), timeout=5)

    asyncio.run(main())
