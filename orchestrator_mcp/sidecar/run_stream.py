"""`GET /runs/{run_id}/stream` (scope read): a run's progress as Server-Sent Events.

    id: 7
    event: step | status | approval | answer | end
    data: {...one line of JSON...}

Ids are the run's own sequence numbers (taken in the transaction that wrote each change), so
a client reconnecting with `Last-Event-ID: 7` gets what came after 7 and nothing twice. A
first connection gets the whole history, then live changes. The stream reads the database,
not this process's memory, so it follows a run executed by any replica: a change made here
wakes it at once, one made elsewhere is seen within POLL_SECONDS. It ends once the run has
ended and all it holds is sent (`end`, and any note added to the history after it), and
after MAX_SECONDS (the client reconnects with its last id).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from orchestrator_mcp.auth import run_viewer
from orchestrator_mcp.errors import UserError
from orchestrator_mcp.runs.engine import RunEngine, RunNotFound
from orchestrator_mcp.runs.models import RunEvent
from orchestrator_mcp.sidecar.runs_routes import principal_of

POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
MAX_SECONDS = 3600.0
MAX_STREAMS = 256  # open streams per process; more get 503
RETRY_MS = 2000


class BadEventId(UserError):
    code = "invalid_request"


class TooManyStreams(UserError):
    code = "too_many_streams"
    status = 503


def last_event_id(request: Request) -> int:
    """-1 (everything) without the header; the id the client saw last with it."""
    text = request.headers.get("last-event-id")
    if text is None or text.strip() == "":
        return -1
    text = text.strip()
    if not text.isdigit() or len(text) > 15:
        raise BadEventId(f"Last-Event-ID {text[:40]!r} is not an id this stream sent: ids "
                         "are non-negative integers; leave the header out to start over")
    return int(text)


def _frame(event: RunEvent) -> str:
    data = json.dumps(event.data, separators=(",", ":"), default=str)
    return f"id: {event.id}\nevent: {event.event}\ndata: {data}\n\n"


def routes(engine: RunEngine) -> list[Route]:
    open_streams = 0

    async def events(run_id: str, after: int) -> AsyncIterator[str]:
        nonlocal open_streams
        open_streams += 1  # counted once iterated: a stream never started holds no slot
        try:
            yield f"retry: {RETRY_MS}\n\n"
            started = last_sent = time.monotonic()
            while time.monotonic() - started < MAX_SECONDS:
                signal = engine.change_signal(run_id)  # before reading: no change is missed
                head, batch = await engine.events_after(run_id, after)
                for event in batch:
                    yield _frame(event)
                    after = max(after, event.id)
                if batch:
                    last_sent = time.monotonic()
                    continue  # there may be more than one batch
                if head.status.finished:  # all it holds is sent: nothing more will come
                    if head.seq == 0:
                        # Ended before events were kept (an older release): it has no
                        # `end` of its own; say it, under the last id sent.
                        yield _frame(RunEvent(id=max(after, 0), event="end",
                                              data={"status": head.status.value}))
                    return
                if time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
                    yield ": keepalive\n\n"
                    last_sent = time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(signal.wait(), POLL_SECONDS)
        finally:
            open_streams -= 1

    async def stream_run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        after = last_event_id(request)
        if len(run_id) > 128:
            raise RunNotFound("no run with such an id; GET /runs lists the runs there are")
        # 404 now, not inside the stream; also for a run the caller may not see.
        await engine.get(run_id, viewer=run_viewer(principal_of(request)), with_steps=False)
        if open_streams >= MAX_STREAMS:
            raise TooManyStreams(f"{MAX_STREAMS} run streams are open in this process; "
                                 "close one or try again later")
        return StreamingResponse(
            events(run_id, after), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return [Route("/runs/{run_id}/stream", stream_run, methods=["GET"])]
