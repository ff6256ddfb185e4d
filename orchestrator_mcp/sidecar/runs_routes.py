"""Runs as plain JSON, for scripts (the same checks as the MCP tools; scopes in auth/):

    GET  /runs?status=&profile=&since=&limit=&offset=   read   newest first, without steps
    GET  /runs/{run_id}                                  read   the whole record, steps too
    POST /runs  {"goal", "profile"?, "context"?}        run    201, the new run, Location
                [Idempotency-Key: <key>]                        200 + Idempotent-Replayed:
                                                                true for a repeat; 409 when
                                                                the key was used otherwise

A caller sees its own runs (the ones its principal started); with read_all or admin, every
run (auth.run_viewer). POST /runs records the caller as the run's owner and checks its
limits (429 naming the limit). Errors are the sidecar's one answer for user errors:
{"error", "detail"} with a status.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orchestrator_mcp.auth import Principal, caller_id, run_viewer
from orchestrator_mcp.errors import UserError
from orchestrator_mcp.runs.engine import RunEngine, RunNotFound
from orchestrator_mcp.runs.idempotency import Idempotency
from orchestrator_mcp.runs.models import RunRecord, RunStatus, parse_since

MAX_LIST = 1000


class InvalidRequest(UserError):
    code = "invalid_request"


class RunRequest(BaseModel):
    """POST /runs: what the MCP `run` tool takes."""

    model_config = ConfigDict(extra="forbid")

    goal: str = Field(min_length=1, max_length=10_000)
    profile: str = Field(default="default", min_length=1, max_length=64)
    context: dict[str, Any] | None = None


def principal_of(request: Request) -> Principal | None:
    """The authenticated caller (None with `serve --no-auth`: the local user)."""
    return request.scope.get("state", {}).get("principal")


def problems(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in e["loc"]) or "(body)", "problem": e["msg"]}
            for e in exc.errors(include_input=False, include_url=False)[:20]]


def _listed(record: RunRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude={"steps"})


def bounded_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidRequest(f"{name}={text!r} is not an integer") from None
    if not low <= value <= high:
        raise InvalidRequest(f"{name}={value} is outside {low}-{high}")
    return value


def parse_status(text: str | None) -> RunStatus | None:
    try:
        return RunStatus(text) if text else None
    except ValueError:
        raise InvalidRequest(f"status={text!r} is not a run status; one of "
                             f"{', '.join(s.value for s in RunStatus)}") from None


def routes(engine: RunEngine) -> list[Route]:
    async def list_runs(request: Request) -> Response:
        records = await engine.list(
            status=parse_status(request.query_params.get("status")),
            profile=request.query_params.get("profile") or None,
            since=parse_since(request.query_params.get("since")),
            limit=bounded_int(request, "limit", 50, 1, MAX_LIST),
            offset=bounded_int(request, "offset", 0, 0, 10_000_000),
            owner=run_viewer(principal_of(request)))
        return JSONResponse({"runs": [_listed(r) for r in records]})

    async def get_run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        if len(run_id) > 128:  # no run id is that long
            raise RunNotFound("no run with such an id; GET /runs lists the runs there are")
        record = await engine.get(run_id, viewer=run_viewer(principal_of(request)))
        return JSONResponse(record.model_dump(mode="json"))

    async def start_run(request: Request) -> Response:
        try:
            wanted = RunRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            error = InvalidRequest("the body is not a valid run request")
            error.detail = problems(exc)
            raise error from None
        key = request.headers.get("idempotency-key")
        principal = principal_of(request)
        idempotency = None if key is None else Idempotency(
            key, principal.id if principal is not None else "local")
        record = await engine.submit(wanted.goal, wanted.profile, wanted.context,
                                     source="http", idempotency=idempotency,
                                     owner=caller_id(principal),
                                     limits=principal.limits if principal else None)
        headers = {"Location": f"/runs/{record.id}"}
        if idempotency is not None and idempotency.replayed:
            headers["Idempotent-Replayed"] = "true"
            return JSONResponse(_listed(record), status_code=200, headers=headers)
        return JSONResponse(_listed(record), status_code=201, headers=headers)

    return [Route("/runs", list_runs, methods=["GET"]),
            Route("/runs", start_run, methods=["POST"]),
            Route("/runs/{run_id}", get_run, methods=["GET"])]
