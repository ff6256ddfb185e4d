"""Fixtures for the provider tests: fake AWS credentials and a port nobody listens on."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """boto3 reads credentials from the process environment; these are fake and local."""
    for name, value in {"AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKEFAKE",
                        "AWS_SECRET_ACCESS_KEY": "fake-secret-key-for-tests",
                        "AWS_SESSION_TOKEN": "fake-session", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_EC2_METADATA_DISABLED": "true",
                        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials")
                        }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port that was free a moment ago and has no listener."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port
