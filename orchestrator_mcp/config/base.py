"""What every configuration model shares: the strict base, names, tool-name globs, tokens."""

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

from orchestrator_mcp.strict import Strict as Strict  # the configuration's models' base

SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
GLOB_CHARS = re.compile(r"^[A-Za-z0-9_.*?\[\]!/-]+$")
MIN_TOKEN_LENGTH = 16
TOKEN_HINT = "generate one with: python -c \"import secrets; print(secrets.token_urlsafe(32))\""


def blank_to_none(value: object) -> object:
    """`${VAR:-}` with VAR unset gives ''; an empty or blank secret is no secret at all."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


def check_token(value: str | None) -> str | None:
    if value is None:
        return None
    if value != value.strip() or any(c.isspace() for c in value):
        raise ValueError("a token may not contain spaces or line breaks")
    if len(value) < MIN_TOKEN_LENGTH:
        raise ValueError(f"a token needs at least {MIN_TOKEN_LENGTH} characters; {TOKEN_HINT}")
    return value


# A bearer token: unset, empty or blank means "no token"; otherwise 16+ characters.
OptionalToken = Annotated[str | None, BeforeValidator(blank_to_none), AfterValidator(check_token)]
# A secret where blank means unset, with no length rule (e.g. an HMAC key).
OptionalSecret = Annotated[str | None, BeforeValidator(blank_to_none)]


def check_name(name: str) -> str:
    if not SERVER_NAME.match(name):
        raise ValueError(
            f"name {name!r} must be 1-32 letters, digits, '_' or '-', starting with a letter "
            "or digit (server names prefix tool names)"
        )
    return name


# A server, token, profile, workflow or alert-rule name.
Name = Annotated[str, AfterValidator(check_name)]


def check_glob(pattern: str) -> str:
    if not pattern or not GLOB_CHARS.match(pattern):
        raise ValueError(
            f"{pattern!r} is not a tool-name glob; use letters, digits, '_', '-', '.', "
            "and the wildcards '*', '?', '[...]'"
        )
    if pattern.count("[") != pattern.count("]"):
        raise ValueError(f"{pattern!r} has an unclosed '[' character class")
    return pattern


def is_loopback_host(host: str) -> bool:
    """'localhost' or a loopback address (127.0.0.0/8, ::1); names are not resolved."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
