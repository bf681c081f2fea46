"""The console's static files (``functions/console.py``), called as the host calls them."""

from __future__ import annotations

import json
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import azure.functions as func
import pytest
from azure.functions.http import HttpResponseConverter

from functions import console

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "functions" / "console"


def _functions() -> dict[str, func.FunctionBuilder]:
    app = func.FunctionApp()  # our own: the host's app may be indexed once per process
    app.register_functions(console.bp)
    return {f.get_function_name(): f for f in app.get_functions()}


FUNCTIONS = _functions()


def _get(name: str, route_params: dict[str, str] | None = None) -> func.HttpResponse:
    call: Callable[[func.HttpRequest], func.HttpResponse] = FUNCTIONS[name].get_user_function()
    url = "/api/console" + (f"/{route_params['file']}" if route_params else "")
    return call(func.HttpRequest("GET", url, body=b"", route_params=route_params or {}))


def _headers(response: func.HttpResponse) -> dict[str, str]:
    """The headers as the Python worker sends them (it adds ``Content-Type``)."""
    datum = HttpResponseConverter.encode(response, expected_type=None)
    return {name.lower(): h.value for name, h in datum.value["headers"].items()}


def test_the_routes_are_anonymous_gets_under_console() -> None:
    triggers = {
        name: json.loads(f.get_function_json())["bindings"][0] for name, f in FUNCTIONS.items()
    }
    assert {name: t["route"] for name, t in triggers.items()} == {
        "console": "console",
        "console_file": "console/{file}",
    }
    for trigger in triggers.values():
        assert trigger["methods"] == ["GET"] and trigger["authLevel"] == "ANONYMOUS"


def test_the_page_is_served_with_its_security_headers() -> None:
    response = _get("console")
    headers = _headers(response)
    assert response.status_code == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert response.get_body() == (FOLDER / "index.html").read_bytes()
    csp = headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no other origin
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert "max-age=" in headers["cache-control"]


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("console.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
        ("softphone.js", "text/javascript; charset=utf-8"),
        ("softphone-worklet.js", "text/javascript; charset=utf-8"),
    ],
)
def test_each_known_file_has_its_content_type(name: str, content_type: str) -> None:
    response = _get("console_file", {"file": name})
    headers = _headers(response)
    assert response.status_code == 200
    assert headers["content-type"] == content_type
    assert headers["content-security-policy"] == console.CONTENT_SECURITY_POLICY
    assert response.get_body() == (FOLDER / name).read_bytes()


def test_the_page_may_connect_to_the_softphone_line_and_nowhere_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDDYTALK_SOFTPHONE_LINE_URL", "ws://127.0.0.1:7099")
    csp = _headers(_get("console"))["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["connect-src"] == "'self' ws://127.0.0.1:7099"
    assert directives["script-src"] == "'self'"
    for bad in ("", "http://127.0.0.1:7099", "ws://", "javascript:alert(1)"):
        assert "connect-src 'self';" in console.content_security_policy(bad), bad


@pytest.mark.parametrize(
    "name", ["console.py", "../console.py", "..%2Fmanage.py", "README.md", "", "INDEX.HTML"]
)
def test_any_other_file_is_not_found(name: str) -> None:
    response = _get("console_file", {"file": name})
    assert response.status_code == 404
    assert response.get_body() == b"not found"


class _Markup(HTMLParser):
    """What of the page would need 'unsafe-inline': inline scripts, handlers, styles."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.labelled: set[str] = set()
        self.fields: set[str] = set()
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        self.problems += [f"{tag} {n}" for n in names if n.startswith("on") or n == "style"]
        if tag == "script":
            self._in_script = True
            if not names.get("src"):
                self.problems.append("a script without src")
        if tag == "label" and names.get("for"):
            self.labelled.add(str(names["for"]))
        if tag in {"input", "select", "textarea"}:
            self.fields.add(str(names.get("id")))

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("an inline script")


def test_the_page_has_no_inline_script_and_labels_every_field() -> None:
    page = _Markup()
    page.feed((FOLDER / "index.html").read_text())
    assert page.problems == []
    assert page.fields and page.fields <= page.labelled
    script = (FOLDER / "console.js").read_text()
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script  # text only
