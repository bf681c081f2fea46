"""``healthz``: the platform's liveness probe. Anonymous, cheap, no dependencies touched."""

from __future__ import annotations

import azure.functions as func

__all__ = ["bp"]

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves it unannotated


@bp.function_name("healthz")
@bp.route(route="healthz", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def healthz(req: func.HttpRequest) -> func.HttpResponse:
    """200 "ok" while the worker process runs."""
    return func.HttpResponse("ok", status_code=200, mimetype="text/plain")
