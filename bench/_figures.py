"""What every benchmark prints beside its figures, so that two runs can be compared: the
machine's load and the installed extras, and each figure as the median over interleaved
rounds with its min–max (see bench/README.md, "Reading the figures")."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics

# pyproject's optional extras, each known by one distribution it installs
EXTRAS = {"bedrock": "boto3", "embeddings": "sentence-transformers", "ansible": "ansible-runner",
          "review": "bandit", "otel": "opentelemetry-sdk"}


def installed_extras() -> list[str]:
    found = []
    for extra, distribution in EXTRAS.items():
        try:
            importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
        found.append(extra)
    return found


def machine() -> str:
    """One line: cores, load averages, Python, installed extras."""
    one, five, fifteen = os.getloadavg()
    extras = ", ".join(installed_extras()) or "none"
    return (f"machine: {os.cpu_count()} cores, load {one:.2f} {five:.2f} {fifteen:.2f} "
            f"(1/5/15 min); Python {platform.python_version()}; extras installed: {extras}")


def spread(values: list[float], digits: int = 2) -> str:
    """`median [min–max]`."""
    return (f"{statistics.median(values):.{digits}f} "
            f"[{min(values):.{digits}f}–{max(values):.{digits}f}]")
