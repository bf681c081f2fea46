"""The media worker image: slim, non-root, its own requirements only, a health check.

Docker cannot run here, so these read media_worker/Dockerfile and .dockerignore; the image is
built by `az acr build` (scripts/deploy).
"""

from __future__ import annotations

import re

from bicep_model import MODULES, ROOT, parse

DOCKERFILE = ROOT / "media_worker" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_the_image_is_slim_python_3_11_and_runs_the_media_worker_as_non_root() -> None:
    steps = instructions()
    args = dict(steps)
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11[\w.-]*-slim[\w.-]*", args["ARG"])
    user = [rest for keyword, rest in steps if keyword == "USER"]
    assert user and user[-1] not in ("root", "0"), "the process runs as root"
    assert args["CMD"] == '["python", "-m", "media_worker"]'
    port = parse(MODULES / "media-worker.bicep")["variables"]["port"]["value"]
    assert args["EXPOSE"] == str(port)


def test_only_the_media_worker_requirements_are_installed() -> None:
    installs = [
        rest for keyword, rest in instructions() if keyword == "RUN" and "pip install" in rest
    ]
    assert installs == ["/opt/venv/bin/pip install --no-compile -r /tmp/requirements.txt"]
    copies = [rest for keyword, rest in instructions() if keyword == "COPY"]
    assert "media_worker/requirements.txt /tmp/requirements.txt" in copies
    assert not any(copy.startswith(("requirements.txt", ".", "./")) for copy in copies)


def test_the_health_check_asks_healthz() -> None:
    (check,) = [rest for keyword, rest in instructions() if keyword == "HEALTHCHECK"]
    assert "/healthz" in check


def test_the_build_context_holds_only_what_the_image_copies() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "the context must start from nothing"
    assert {line for line in lines if line.startswith("!")} == {"!media_worker/", "!reddytalk/"}
    assert {"**/.env", "**/local.settings.json"} <= set(lines)


def test_the_speech_sdk_s_native_dependencies_are_in_the_image() -> None:
    requirements = (ROOT / "media_worker" / "requirements.txt").read_text()
    assert "azure-cognitiveservices-speech" in requirements
    apt = " ".join(rest for keyword, rest in instructions() if "apt-get install" in rest)
    for package in ("ca-certificates", "libasound2", "espeak-ng"):
        assert re.search(rf"\b{re.escape(package)}\b", apt), package
