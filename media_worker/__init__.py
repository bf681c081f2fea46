"""The media worker: the always-warm ASGI service that holds every call's live audio."""
