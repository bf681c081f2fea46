"""uvicorn's WebSocket protocol with a direct path for the media streams.

Why. A call's stream carries 50 small messages a second each way. Through ASGI every
inbound message is a dict put on a queue, a task woken, and Starlette's and the
session's async iterators stepped; every outbound one a dict and an awaited ``send``
that checks the connection's state. With hundreds of calls on one core that glue,
not the audio work, was most of the media worker's CPU (``scripts/bench_load``; the
figures are in the commit that added this module).

What. :class:`DirectWebSocketProtocol` is uvicorn's own sans-I/O protocol
(``websockets``' ``ServerProtocol``: handshake, ping, close and fragmentation stay
theirs), plus two shortcuts an app may opt into after ``websocket.accept`` through the
scope extension :data:`DIRECT_STREAM`:

* :meth:`DirectWebSocketProtocol.attach`: text messages go to a callback, synchronously,
  as they are parsed (``websocket.disconnect`` still arrives through ``receive``);
* :meth:`DirectWebSocketProtocol.send_text_now`: a text message is written to the
  transport at once, unless the transport asked to pause (then the app uses ``send``).

An app that finds no extension (another server, a test client) uses plain ASGI. The
subclass relies on uvicorn internals, so uvicorn is pinned (media_worker/requirements.txt)
and ``tests/media_worker/test_direct_ws.py`` checks both shortcuts over a real socket.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["DIRECT_STREAM", "DirectWebSocketProtocol"]

DIRECT_STREAM = "reddytalk.direct_stream"
"""The scope extension: ``scope["extensions"][DIRECT_STREAM]["protocol"]``."""


class DirectWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol with the two shortcuts above."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_text: Callable[[str], None] | None = None
        self.pushed = 0  # messages handed to on_text
        self.written = 0  # messages written by send_text_now

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # an upgrade (a refused request has no scope)
            scope["extensions"][DIRECT_STREAM] = {"protocol": self}

    def attach(self, on_text: Callable[[str], None]) -> None:
        """From now on, hand every text message to ``on_text`` as it arrives."""
        self._on_text = on_text

    def send_receive_event_to_app(self) -> None:
        on_text = self._on_text
        if on_text is None or self.curr_msg_data_type != "text" or self.close_sent:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        try:
            text = data.decode()
        except UnicodeDecodeError:  # the ASGI path reports it and closes with 1007
            super().send_receive_event_to_app()
            return
        self.frames = []
        self.pushed += 1
        on_text(text)

    def send_text_now(self, text: str) -> bool:
        """Write one text message now; False if it cannot be (paused, closing, gone)."""
        if (
            self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or not self.writable.is_set()
        ):
            return False
        self.conn.send_text(text.encode())
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.written += 1
        return True
