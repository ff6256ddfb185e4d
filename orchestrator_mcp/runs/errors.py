"""What can go wrong with a run request, as user errors (see `orchestrator_mcp.errors`)."""

from __future__ import annotations

from orchestrator_mcp.errors import Conflict, NotFound, Unavailable, UserError


class RunError(UserError):
    """A run request that cannot be taken as given: says what was wrong and how to fix it."""


class RunNotFound(RunError, NotFound):
    """No run has the id asked for."""


class RunConflict(RunError, Conflict):
    """The run is not in a state that allows this (not waiting, already ended, expired)."""


class RunsUnavailable(RunError, Unavailable):
    """The run engine is starting, or could not start (its database)."""
