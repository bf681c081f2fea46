"""The admin API (``/api/manage/...``; the Functions host reserves ``/admin``).

Authenticated by an Entra ID bearer token with an admin app role, or, on the embedded
profile, by the local admin token (:mod:`reddytalk.admin.auth`); the work is in
:mod:`reddytalk.admin.console`. Every response is JSON but a clinic's file
(``text/yaml``); an error is ``{"error": ...}``, and a refused request changes
nothing.

- ``GET manage/clinics``: the clinics the caller may see, and whether the softphone
  has a phone line here (``softphone``).
- ``GET|PUT|DELETE manage/clinics/{clinic_id}``: the clinic's file; add (201) or
  replace (200) it from a file (Operator); remove it (204, Operator).
- ``GET manage/clinics/{clinic_id}/calls?limit=&before=``: its calls, newest first
  (no PHI); ``.../calls/{call_id}``: one call with its transcript (audited);
  ``.../calls/{call_id}/audit``: the call's audit trail.
- ``GET manage/clinics/{clinic_id}/appointments?days=``: the appointments its calls
  booked, moved or cancelled in the last ``days`` (default 30, at most 366), newest first.
- ``GET manage/clinics/{clinic_id}/messages`` (audited);
  ``POST .../messages/{message_id}/done``.
- ``POST manage/clinics/{clinic_id}/softphone``: a new call for the browser softphone
  (where to dial, the stream's rate; audited); 404 where there is no phone line.

Statuses: 400 bad input (a clinic file's ``problems`` by field), 401 no valid
credentials, 403 no admin role or not an Operator, 404 no such thing (or another
clinic's), 409 a number of another clinic or calls in progress, 503 records
unavailable.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import azure.functions as func

from functions.runtime import Runtime, runtime
from reddytalk.admin import console
from reddytalk.admin.auth import Principal
from reddytalk.clinics.admin import DeploymentEhr
from reddytalk.clinics.config import ClinicConfigError
from reddytalk.errors import ClinicBusy, Forbidden, ProviderError, Unauthorized

__all__ = ["bp"]

log = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves it unannotated

_CLINIC = "manage/clinics/{clinic_id}"
_MAX_BODY = 256 * 1024
_MAX_DAYS = 366
_Work = Callable[[Runtime, Principal], Awaitable[func.HttpResponse]]


def _json(status: int, body: Any) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


async def _answer(req: func.HttpRequest, work: _Work) -> func.HttpResponse:
    """Authenticate, run ``work``, and map the domain's errors to statuses."""
    rt = await runtime()
    try:
        principal = await rt.admin.authenticate_async(req.headers.get("Authorization"))
    except Unauthorized as error:
        log.warning("admin API refused a request: %s", error)
        return _json(401, {"error": "unauthorized"})
    try:
        return await work(rt, principal)
    except Forbidden as error:
        return _json(403, {"error": str(error)})
    except ClinicConfigError as error:
        problems = [{"field": path, "message": message} for path, message in error.problems]
        return _json(400, {"error": "the clinic file has problems", "problems": problems})
    except (console.NotFound, ValueError) as error:
        return _json(404 if isinstance(error, LookupError) else 400, {"error": str(error)})
    except (console.NumberTaken, ClinicBusy) as error:
        return _json(409, {"error": str(error)})
    except ProviderError as error:
        log.warning("admin API: records unavailable: %s", error)
        return _json(503, {"error": "the records are unavailable"})


@bp.function_name("manage_clinics")
@bp.route(route="manage/clinics", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def manage_clinics(req: func.HttpRequest) -> func.HttpResponse:
    """The clinics the caller may see."""

    async def work(rt: Runtime, who: Principal) -> func.HttpResponse:
        clinics = await console.list_visible_clinics(rt.store, who)
        return _json(200, {"clinics": clinics, "softphone": bool(rt.settings.softphone_line_url)})

    return await _answer(req, work)


@bp.function_name("manage_clinic")
@bp.route(route=_CLINIC, methods=["GET", "PUT", "DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
async def manage_clinic(req: func.HttpRequest) -> func.HttpResponse:
    """A clinic's file: read it, add or replace it (Operator), remove the clinic."""
    clinic_id = req.route_params.get("clinic_id", "")

    async def work(rt: Runtime, who: Principal) -> func.HttpResponse:
        if req.method == "GET":
            text = await console.clinic_yaml(rt.store, who, clinic_id)
            return func.HttpResponse(text, status_code=200, mimetype="text/yaml")
        if req.method == "DELETE":
            await console.delete_clinic(rt.store, who, clinic_id)
            return func.HttpResponse(status_code=204)
        added = await console.put_clinic(
            rt.store,
            who,
            clinic_id,
            _text(req),
            ehr=rt.ehr,
            deployment=DeploymentEhr.of(rt.settings),
            now=rt.clock(),
        )
        return _json(201 if added else 200, {"id": clinic_id, "added": added})

    return await _answer(req, work)


@bp.function_name("manage_calls")
@bp.route(route=f"{_CLINIC}/calls", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def manage_calls(req: func.HttpRequest) -> func.HttpResponse:
    """The clinic's calls, newest first (``limit``, ``before``: an ISO time)."""

    async def work(rt: Runtime, who: Principal) -> func.HttpResponse:
        limit, before = _paging(req.params)
        calls = await console.list_calls(
            rt.store, who, req.route_params["clinic_id"], limit=limit, before=before
        )
        return _json(200, {"calls": calls})

    return await _answer(req, work)


@bp.function_name("manage_call")
@bp.route(route=f"{_CLINIC}/calls/{{call_id}}", methods=["GET"],
          auth_level=func.AuthLevel.ANONYMOUS)  # fmt: skip
async def manage_call(req: func.HttpRequest) -> func.HttpResponse:
    """One call with its transcript and caller number (the view is audited)."""
    clinic_id, call_id = req.route_params["clinic_id"], req.route_params["call_id"]

    async def work(rt: Runtime, who: Principal) -> func.HttpResponse:
        call = await console.view_call(rt.store, who, clinic_id, call_id, now=rt.clock())
        return _json(200, call)

    return await _answer(req, work)


@bp.function_name("manage_call_audit")
@bp.route(route=f"{_CLINIC}/calls/{{call_id}}/audit", methods=["GET"],
          auth_level=func.AuthLevel.ANONYMOUS)  # fmt: skip
async def manage_call_audit(req: func.HttpRequest) -> func.HttpResponse:
    """The call's audit trail (ids only)."""
    clinic_id, call_id = req.route_params["clinic_id"], req.route_params["call_id"]

    async def work(rt: Runtime, who: Principal) -> func.HttpResponse:
        events = await console.call_audit_trail(rt.store, who, clinic_id, call_id)
        return _json(200, {"call_id": call_id, "audit": events})

    return await _answer(req, work)


@bp.function_name("manage_appointments")
@bp.route(route=f"{_CLINIC}/appointments", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def manage_appointments(req: func.HttpRequest) -> func.HttpResponse:
    """The appointments the clinic's calls changed in the last ``days`` (default 30)."""

    async def work(rt: Runtime, who: Principal) -> func.HttpResponse:
        since = rt.clock() - dt.timedelta(days=_days(req.params))
        changes = await console.appointment_changes(
            rt.store, who, req.route_params["clinic_id"], since=since
        )
        return _json(200, {"appointments": changes})

    return await _answer(req, work)


@bp.function_name("manage_messages")
@bp.route(route=f"{_CLINIC}/messages", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def manage_messages(req: func.HttpRequest) -> func.HttpResponse:
    """The clinic's messages for staff (the view is audited)."""

    async def work(rt: Runtime, who: Principal) -> func.HttpResponse:
        clinic_id = req.route_params["clinic_id"]
        messages = await console.list_messages(rt.store, who, clinic_id, now=rt.clock())
        return _json(200, {"messages": messages})

    return await _answer(req, work)


@bp.function_name("manage_message_done")
@bp.route(route=f"{_CLINIC}/messages/{{message_id}}/done", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)  # fmt: skip
async def manage_message_done(req: func.HttpRequest) -> func.HttpResponse:
    """Mark a message done."""
    clinic_id, message_id = req.route_params["clinic_id"], req.route_params["message_id"]

    async def work(rt: Runtime, who: Principal) -> func.HttpResponse:
        await console.mark_message_done(rt.store, who, clinic_id, message_id)
        return _json(200, {"message_id": message_id, "status": "done"})

    return await _answer(req, work)


@bp.function_name("manage_softphone")
@bp.route(route=f"{_CLINIC}/softphone", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def manage_softphone(req: func.HttpRequest) -> func.HttpResponse:
    """A new softphone call to the clinic: where the browser dials, and how."""
    clinic_id = req.route_params["clinic_id"]

    async def work(rt: Runtime, who: Principal) -> func.HttpResponse:
        call = await console.softphone_call(
            rt.store, who, clinic_id, line_url=rt.settings.softphone_line_url, now=rt.clock()
        )
        return _json(201, call)

    return await _answer(req, work)


def _text(req: func.HttpRequest) -> str:
    body = req.get_body()
    if len(body) > _MAX_BODY:
        raise ValueError(f"the clinic file is over {_MAX_BODY // 1024} KiB")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the clinic file is not UTF-8 text") from None


def _days(params: Any) -> int:
    """``days`` (default 30, 1 to 366) from the query."""
    text = params.get("days") or "30"
    if not text.isdigit() or not 1 <= int(text) <= _MAX_DAYS:
        raise ValueError(f"days must be a whole number from 1 to {_MAX_DAYS}")
    return int(text)


def _paging(params: Any) -> tuple[int, dt.datetime | None]:
    """``limit`` (default 50) and ``before`` (an aware ISO 8601 time) from the query."""
    try:
        limit = int(params.get("limit") or 50)
        before = dt.datetime.fromisoformat(params["before"]) if params.get("before") else None
    except ValueError:
        raise ValueError("limit must be a whole number and before an ISO 8601 time") from None
    return limit, before
