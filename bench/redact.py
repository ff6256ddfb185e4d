"""Secret redaction (`telemetry.redaction`): 4 MiB of adversarial text, against the floor of
one `str.replace` pass over the same characters, and short log lines against the pattern
set it replaced (the one of 5bd5f73, which took 19 s on 40,000 characters of URL-shaped
text), all measured in the same run, variants interleaved in rounds.

Target: every 4 MiB input redacted in ≤ 100 ms (median of the rounds).

    python bench/redact.py [--rounds 5] [--mib 4]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _figures import machine, spread  # noqa: E402

from orchestrator_mcp.telemetry.audit_store import bounded_json  # noqa: E402
from orchestrator_mcp.telemetry.redaction import Redactor  # noqa: E402

TARGET_MS = 100.0
# What a deployment typically knows: HTTP token, LLM key, a few secret-named env values.
SECRETS = ["orch-http-token-3f9c2a7e51", "sk-proj-LIVEkey0123456789abcdef",
           "zq7-env-value-NOT-for-logs-4711", "license-KEY-000111222",
           "db-password-Qw3rty!", "hmac-secret-abcdef0123", "Token header-secret-0003",
           "header-secret-0003"]

# ---- the peer for short texts: the pattern set of 5bd5f73 --------------------------------

_OLD = [re.compile(p) for p in (
    r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{4,}",
    r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?basic\s+)[A-Za-z0-9+/=]+",
    r"(?i)((?:api[_-]?key|apikey|passw(?:or)?d|secret|client[_-]?secret|access[_-]?key"
    r"|secret[_-]?access[_-]?key|session[_-]?token|access[_-]?token|refresh[_-]?token"
    r"|auth[_-]?token|token|private[_-]?key)[\"']?\s*[:=]\s*[\"']?)"
    r"(?!\*\*\*)[^\s\"',;&}\]]+",
    r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+(?=@)",
    r"(\b)(?:sk-[A-Za-z0-9_-]{8,}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|(?:AKIA|ASIA)[A-Z0-9]{16})",
    r"(-----BEGIN [A-Z ]*PRIVATE KEY-----)[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
)]
_OLD_AWS = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")


def _old_aws(match: re.Match[str]) -> str:
    text = match.group(0)
    mixed = (any(c.islower() for c in text) and any(c.isupper() for c in text)
             and any(c.isdigit() for c in text))
    return "***" if mixed else text


def old_redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, "***")
    for pattern in _OLD:
        text = pattern.sub(r"\1***", text)
    return _OLD_AWS.sub(_old_aws, text)


# ---- inputs ---------------------------------------------------------------------------


def fill(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def log_lines(count: int, seed: int = 1) -> list[str]:
    """Realistic log lines: requests, tool calls, some with a secret or a credential."""
    rnd = random.Random(seed)
    shapes = [
        "HTTP Request: POST http://127.0.0.1:8931/mcp \"HTTP/1.1 200 OK\"",
        "server everything connected (13 tools) in 0.31 s",
        "tool call everything_echo ok in 2.1 ms (run run_7f3a, step 4)",
        "calling https://api.example.com/v1/items?page=2&api_key=abcdef0123456789",
        "retrying after 429: Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc",
        "connect postgres://app:db-password-Qw3rty!@db:5432/orders failed: timeout",
        "llm usage input_tokens=1204 output_tokens=88 cost_usd=0.0021",
        "alert HighDiskUsage on node-3 (/var 91%) routed to profile diagnose",
        "git fetch done: 3f786850e387550fdab836ed7e6dc881de23001b..9c1185a5c5e9fc54612808977",
        "webhook accepted group {alertname=\"HighCPU\"} in 1.3 ms",
    ]
    return [f"2026-12-01 11:{i // 60 % 60:02d}:{i % 60:02d} INFO orchestrator_mcp: "
            f"{rnd.choice(shapes)}" for i in range(count)]


def big_inputs(size: int) -> dict[str, str]:
    rnd = random.Random(2)
    b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+"
    return {
        "a:// + ':' * N": "a://" + ":" * (size - 4),
        "letters only": "a" * size,
        "a://x: + 'y' * N": "a://x:" + "y" * (size - 6),
        "'://' repeated": fill("://", size),
        "'bearer ' repeated": fill("bearer ", size),
        "'password=' repeated": fill("password=", size),
        "'password= ' repeated": fill("password= ", size),
        "one base64 run": "".join(rnd.choice(b64) for _ in range(size)),
        "40-char base64 runs": fill("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY ", size),
        "'token ' repeated": fill("token ", size),
        "'gh' repeated": fill("gh", size),
        "URL creds repeated": fill("a://u:p@h ", size),
        "'-----BEGIN ' repeated": fill("-----BEGIN RSA PRIVATE KEY-----\n", size),
        "log lines": fill("\n".join(log_lines(2000)) + "\n", size),
        "non-ASCII log": fill("Ünïcödé: passwort=geheim, token=ключ-ü, ok ✓ ", size),
    }


# ---- timing ---------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000




def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mib", type=float, default=4.0)
    args = parser.parse_args()
    redactor = Redactor(SECRETS)
    size = int(args.mib * 1024 * 1024)
    inputs = big_inputs(size)

    print(machine())
    print(f"== {args.mib:g} MiB inputs: redact_text vs one str.replace pass over the same "
          f"text ({args.rounds} rounds, interleaved; ms median [min–max])")
    times: dict[str, dict[str, list[float]]] = {
        name: {"new": [], "floor": [], "ratio": []} for name in inputs}
    for _ in range(args.rounds):
        for name, text in inputs.items():
            floor = timed(lambda text=text: text.replace(SECRETS[0], "***"))
            new = timed(lambda text=text: redactor.text(text))
            row = times[name]
            row["new"].append(new)
            row["floor"].append(floor)
            row["ratio"].append(new / floor)
    worst = 0.0
    print(f"{'input':26s} {'redact_text ms':>24s} {'str.replace ms':>22s} "
          f"{'ratio':>24s}  target")
    for name, row in times.items():
        median = statistics.median(row["new"])
        worst = max(worst, median)
        print(f"{name:26s} {spread(row['new']):>24s} {spread(row['floor']):>22s} "
              f"{spread(row['ratio']):>24s}  {'ok' if median <= TARGET_MS else 'OVER'}")
    print(f"worst median: {worst:.1f} ms (target ≤ {TARGET_MS:.0f} ms): "
          f"{'met' if worst <= TARGET_MS else 'NOT met'}")

    argument = {"message": fill("bearer ", size), "extra": ["x" * 100] * 5000}
    audit = [timed(lambda: bounded_json(argument)) for _ in range(args.rounds)]
    print(f"\naudit entry of a {args.mib:g} MiB argument (bounded_json): "
          f"{spread(audit)} ms")

    lines = log_lines(2000, seed=3)
    print(f"\n== short log lines: redact_text vs the pattern set of 5bd5f73 "
          f"({len(lines)} lines, µs per line, {args.rounds} rounds)")
    short: dict[str, list[float]] = {"new": [], "old": [], "ratio": []}
    for _ in range(args.rounds):
        old = timed(lambda: [old_redact_text(line, SECRETS) for line in lines])
        new = timed(lambda: [redactor.text(line) for line in lines])
        short["old"].append(old * 1000 / len(lines))
        short["new"].append(new * 1000 / len(lines))
        short["ratio"].append(new / old)
    print(f"new {spread(short['new'])} µs, old {spread(short['old'])} µs, "
          f"new/old {spread(short['ratio'])}")

    print(f"\n== growth on 'a' * N, an echo argument of plain letters (ms, median of "
          f"{args.rounds}); the old set is quadratic")
    for n in (1_000, 2_000, 4_000, 8_000):
        text = "a" * n
        olds, news = [], []
        for _ in range(args.rounds):
            olds.append(timed(lambda text=text: old_redact_text(text)))
            news.append(timed(lambda text=text: redactor.text(text)))
        print(f"N={n:>6}: old {statistics.median(olds):9.2f}  new "
              f"{statistics.median(news):7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
