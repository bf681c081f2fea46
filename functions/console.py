"""The admin console: a static page for a clinic's staff over the admin API.

``GET /api/console`` serves ``console/index.html``; ``GET /api/console/{file}`` serves
the page's script and style sheet, and nothing else (no path from the URL reaches the
file system: only the names in :data:`FILES` are known).

Why the Functions app serves it (and not the media worker): the page is a client of
the admin API (``functions/manage.py``), which lives here with its authentication.
Served from the same origin, the page calls ``/api/manage/...`` with no CORS policy to
keep right, and in Azure App Service Authentication's ``/.auth/me`` (its token store)
is on that origin too. The media worker holds no admin API and should not grow one.

The files hold no data, so serving them needs no token; every data request the page
makes carries ``Authorization: Bearer <token>``. The Content-Security-Policy allows
scripts and styles from this origin only (no inline script, so an injected value
cannot run) and ``connect-src 'self'``, plus the softphone's phone line where there is
one (the local stack's ``ws://127.0.0.1:<port>``, from ``REDDYTALK_SOFTPHONE_LINE_URL``).
The softphone (``softphone.js``, ``softphone-worklet.js``) captures the microphone with an
AudioWorklet, a module from this origin too.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import azure.functions as func

__all__ = ["CONTENT_SECURITY_POLICY", "FILES", "bp", "content_security_policy"]

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves it unannotated

_FOLDER = Path(__file__).with_name("console")

FILES = {
    "index.html": "text/html",
    "console.js": "text/javascript",
    "console.css": "text/css",
    "softphone.js": "text/javascript",
    "softphone-worklet.js": "text/javascript",
}
"""The files served, and their content types (all UTF-8)."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Short-lived and revalidated: a deployment's new page is seen within minutes.
    "Cache-Control": "public, max-age=300, must-revalidate",
}


def _file(name: str) -> func.HttpResponse:
    mimetype = FILES.get(name)
    if mimetype is None:
        return func.HttpResponse("not found", status_code=404, mimetype="text/plain")
    body = (_FOLDER / name).read_bytes()
    headers = {"Content-Security-Policy": content_security_policy(), **_HEADERS}
    return func.HttpResponse(
        body, status_code=200, mimetype=mimetype, charset="utf-8", headers=headers
    )


def content_security_policy(line_url: str | None = None) -> str:
    """The policy, with the softphone's phone line (``line_url``, by default the setting)
    as the one other place the page may connect to."""
    if line_url is None:
        line_url = os.environ.get("REDDYTALK_SOFTPHONE_LINE_URL", "")
    parts = urlsplit(line_url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        return CONTENT_SECURITY_POLICY
    line = f"{parts.scheme}://{parts.netloc}"
    return CONTENT_SECURITY_POLICY.replace("connect-src 'self'", f"connect-src 'self' {line}")


@bp.function_name("console")
@bp.route(route="console", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def console(req: func.HttpRequest) -> func.HttpResponse:
    """The console's page."""
    return _file("index.html")


@bp.function_name("console_file")
@bp.route(route="console/{file}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def console_file(req: func.HttpRequest) -> func.HttpResponse:
    """One of the page's files (404 for any other name)."""
    return _file(req.route_params.get("file", ""))
