"""Run the media worker: ``python -m media_worker`` (settings from ``REDDYTALK_*``)."""

from __future__ import annotations

import gc

import uvicorn
from starlette.applications import Starlette

from media_worker.app import create_app
from media_worker.direct_ws import DirectWebSocketProtocol
from media_worker.drain import DrainingServer
from reddytalk.logs import configure_logging
from reddytalk.settings import Settings


def server_config(app: Starlette, *, host: str, port: int) -> uvicorn.Config:
    """How the media worker is served (the benchmarks serve it the same way): uvloop
    when installed (``uvicorn[standard]``), no access log, messages up to 1 MiB.

    WebSocket compression (permessage-deflate) is declined: every 20 ms frame both ways
    would be deflated and inflated for base64 audio that barely compresses. Measured with
    ``scripts/bench_load`` at 200 calls on one core: 3.19 ms of CPU per call-second
    without it against 3.52 ms with it, p99 frame lateness 14.5 ms against 17.7 ms.

    WebSockets are uvicorn's sans-I/O protocol with the media streams' direct path
    (:mod:`media_worker.direct_ws`).
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="auto",
        log_config=None,
        access_log=False,  # a call's URL holds the dialled number
        ws=DirectWebSocketProtocol,
        ws_max_size=1 << 20,
        ws_per_message_deflate=False,
    )


def tune_gc() -> None:
    """Collect cyclic garbage less often, and never rescan what start-up made.

    Every frame of every call allocates a few short-lived objects, and the default
    thresholds (700, 10, 10) then run full collections over every call's objects often
    enough to stall the event loop for tens of ms. Measured with ``scripts/bench_load``
    at 500 calls on one core: p99 frame lateness 42.9 -> 24.9 ms, the worst frame
    207 -> 53 ms late, CPU unchanged.
    """
    gc.freeze()  # the modules and the app: permanent, out of every collection
    gc.set_threshold(10_000, 50, 100)


def main() -> None:
    """Serve on the configured host and port."""
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    app = create_app(settings)
    tune_gc()
    config = server_config(app, host=settings.host, port=settings.port)
    DrainingServer(config, drain=app.state.drain).run()


if __name__ == "__main__":
    main()
