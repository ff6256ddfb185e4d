"""Per-principal limits (`http.limits`, a token's or managed key's `limits`), checked when a
run is submitted: the principal's runs that have not ended, and the model cost of its runs
started this calendar month (UTC), summed from the runs' usage records. A run over a limit
is refused, naming the limit; child runs belong to their parent's submission and are not
checked. Two submissions at the same instant may both pass the concurrency check (no lock
is taken across replicas): the limit is a guard against runaway callers, not a quota to
the unit.

The share of a cost cap spent is a metric at every check; passing 80 % and 100 % is also a
log line and a counter, once per principal, threshold and month in a process.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from orchestrator_mcp.auth.scopes import label_of
from orchestrator_mcp.config.http import PrincipalLimits
from orchestrator_mcp.runs.errors import RunError

log = logging.getLogger(__name__)

THRESHOLDS = (0.8, 1.0)
_reported: set[tuple[str, str, float]] = set()  # (principal, month, threshold)


class LimitExceeded(RunError):
    status = 429
    code = "limit_exceeded"


def month_start(now: float) -> float:
    moment = datetime.fromtimestamp(now, UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def check(owner: str, limits: PrincipalLimits, active: int, spent: float, now: float) -> None:
    """Refuse a new run of `owner`, who has `active` runs going and spent `spent` USD this
    month, when it would pass a limit; report how much of the cost cap is spent."""
    from orchestrator_mcp.telemetry import metrics

    cap = limits.monthly_cost_usd
    if cap is not None:
        _report(owner, spent, cap, now)
        if spent >= cap:
            metrics.PRINCIPAL_REFUSED.labels("monthly_cost_usd").inc()
            raise LimitExceeded(
                f"{label_of(owner)} has spent ${spent:.2f} of its monthly cost cap of ${cap:.2f} "
                f"(limits.monthly_cost_usd); no new runs until next month or a higher cap")
    most = limits.max_concurrent_runs
    if most is not None and active >= most:
        metrics.PRINCIPAL_REFUSED.labels("max_concurrent_runs").inc()
        raise LimitExceeded(
            f"{label_of(owner)} already has {active} runs going, its limit "
            f"(limits.max_concurrent_runs) is {most}; wait for one to end or cancel one")


def _report(owner: str, spent: float, cap: float, now: float) -> None:
    from orchestrator_mcp.telemetry import metrics

    metrics.PRINCIPAL_COST_CAP_USED.labels(owner).set(spent / cap)
    month = datetime.fromtimestamp(now, UTC).strftime("%Y-%m")
    for threshold in THRESHOLDS:
        if spent >= cap * threshold and (owner, month, threshold) not in _reported:
            _reported.add((owner, month, threshold))
            shown = f"{threshold:.0%}"
            metrics.PRINCIPAL_COST_CAP_REACHED.labels(owner, shown).inc()
            log.warning("%s has spent $%.2f, %s or more of its monthly cost cap of $%.2f",
                        label_of(owner), spent, shown, cap)
