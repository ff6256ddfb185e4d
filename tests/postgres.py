"""A throw-away PostgreSQL cluster on 127.0.0.1 for the scale-out tests (Debian's
postgresql package; initdb refuses to run as root, so as root it runs as `postgres`)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def cluster(settings: str = "") -> Iterator[str]:
    """Start a cluster (`settings`: more `-c name=value` server options); yields the server
    URL without a database name (postgresql://orch@127.0.0.1:PORT). Stopped (and deleted)
    on exit."""
    binaries = bin_dir()
    assert binaries is not None, "PostgreSQL is not installed (.ci/run installs it)"
    root = Path(tempfile.mkdtemp(prefix="orch-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = _free_port()
    subprocess.run(_as_owner([str(binaries / "initdb"), "-D", str(data), "-U", "orch",
                              "-A", "trust", "--no-sync", "-E", "UTF8"]),
                   check=True, capture_output=True)
    options = (f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off "
               f"-c max_connections=300 -c shared_buffers=64MB {settings}")
    subprocess.run(_as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-o", options,
                              "-l", str(root / "server.log"), "-w", "start"]),
                   check=True, capture_output=True)
    try:
        yield f"postgresql://orch@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-m",
                                  "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def create_database(server_url: str) -> str:
    """A new empty database on the cluster; returns its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url}/{name}"
