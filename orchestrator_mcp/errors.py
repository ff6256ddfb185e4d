"""The one base class of errors a user can act on.

A `UserError`'s text says what was wrong and how to fix it, without secrets. Each face maps
it once: the MCP front turns it into a tool error (middleware), the HTTP sidecar into a JSON
answer with `status` (an exception handler), the CLI into a message and exit code 2.
Anything else that escapes is a bug: logged with its traceback, answered as an internal
error.
"""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    status = 400  # the HTTP status this error is answered with
    code = "invalid_request"  # the `error` field of the HTTP answer
    detail: Any = None  # the `detail` field when it is more than the message (a list)


class NotFound(UserError):
    status = 404
    code = "not_found"


class Conflict(UserError):
    """The request is valid but the thing it acts on is not in a state that allows it."""

    status = 409
    code = "conflict"


class Unavailable(UserError):
    """A part the request needs is starting, failed to start, or is unreachable."""

    status = 503
    code = "unavailable"
