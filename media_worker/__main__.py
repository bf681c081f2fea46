"""Run the media worker: ``python -m media_worker`` (settings from ``REDDYTALK_*``)."""

from __future__ import annotations

import uvicorn

from media_worker.app import create_app
from media_worker.drain import DrainingServer
from reddytalk.logs import configure_logging
from reddytalk.settings import Settings


def main() -> None:
    """Serve on the configured host and port."""
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # a call's URL holds the dialled number
        ws_max_size=1 << 20,
    )
    DrainingServer(config, drain=app.state.drain).run()


if __name__ == "__main__":
    main()
