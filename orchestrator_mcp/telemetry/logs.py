"""Logging set-up: stderr plus a file in the data dir; stdout stays for the protocol.

Every handler carries a `RedactingFilter`, so no record reaches stderr or the log file with
a secret in it: credential shapes (bearer tokens, `api_key=…`, URL passwords, AWS keys…)
and the values of secret-looking environment variables, of the secrets read through
config/environment.py and of configured secrets, as read when logging is configured. The
filter uses the process's default `Redactor`, which `configure_logging` installs: the audit
log, run records and spans use the same one, so a secret known to the logs is hidden
everywhere.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit

from orchestrator_mcp.telemetry.redaction import Redactor, install

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Environment variables whose values are secrets (OPENAI_API_KEY, ORCH_HTTP_TOKEN,
# AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, GITHUB_TOKEN, DB_PASSWORD, …).
SECRET_ENV = re.compile(r"pass|secret|token|api[_-]?key|credential|private[_-]?key", re.I)
MIN_SECRET_LENGTH = 8  # shorter values ("1", "true") would blank out ordinary text


def env_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of secret-looking environment variables."""
    environ = os.environ if environ is None else environ
    return [v for k, v in environ.items() if SECRET_ENV.search(k) and len(v) >= MIN_SECRET_LENGTH]


def environment_secrets(environment: Any = None) -> list[str]:
    """Secrets among the variables read through config/environment.py: ORCH_HTTP_TOKEN,
    OPENAI_API_KEY, and the password and query values of ORCH_DATABASE_URL (whose name does
    not look secret) and of the LLM endpoints. A concern whose variables do not validate
    gives none here (its secret-named variables are still hidden by `env_secrets`)."""
    from orchestrator_mcp.config.environment import EnvironmentVariableError
    from orchestrator_mcp.config.environment import environment as process_environment

    env = environment or process_environment()
    found: list[str | None] = []
    try:
        orchestrator = env.orchestrator
    except EnvironmentVariableError:
        pass
    else:
        if orchestrator.http_token is not None:
            found.append(orchestrator.http_token.get_secret_value())
        found.extend(url_secrets(orchestrator.database(None)))
    try:
        llm = env.llm
    except EnvironmentVariableError:
        pass
    else:
        found.append(llm.api_key)
        for url in (llm.openai_base_url, llm.ollama_base_url, llm.bedrock_endpoint_url):
            found.extend(url_secrets(url))
    return list(dict.fromkeys(s for s in found
                              if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH))


def url_secrets(url: str | None) -> list[str]:
    """The password and the query values of a URL, as written and decoded
    (`https://u:PW@host/mcp?license=KEY`): a server's URL is logged by the HTTP client on
    every request."""
    if not url or "://" not in url:
        return []
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # e.g. a bad port: nothing to take apart
        return []
    found = [password, unquote(password)] if password else []
    for pair in re.split(r"[&;]", parts.query):
        value = pair.partition("=")[2]
        found += [value, unquote_plus(value)]
    return found


def _url_user(url: str) -> list[str]:
    """The user name of a URL's userinfo (`https://TOKEN@host/…` carries a token there)."""
    try:
        user = urlsplit(url).username
    except ValueError:
        return []
    return [user, unquote(user)] if user else []


def _header_secrets(headers: Mapping[str, str]) -> Iterator[str]:
    """Every header value (X-Api-Key, X-License… carry secrets under any name), and the
    credentials of `Authorization: <scheme> <credentials>` on their own."""
    for value in headers.values():
        yield value
        scheme, _, credentials = value.strip().partition(" ")
        if credentials:
            yield credentials.strip()


def config_secrets(config: Any) -> list[str]:
    """Secrets written in servers.yaml / profiles.yaml: the HTTP and alert tokens, the
    OAuth introspection client secret, the alert HMAC secret, the LLM key, passwords and
    query values of every URL (downstream servers, URLs in their env, LLM endpoints, the
    runs database), downstream servers' header values and their env values under
    secret-looking names, and each notification target's secret and whole URL (a
    webhook's path is often its secret, e.g. Slack's) with its user name, password and
    query values."""
    found: list[str | None] = []
    servers = getattr(config, "servers", None)
    http = getattr(servers, "http", None)
    if http is not None:
        found.append(http.token)
        found.extend(t.token for t in http.tokens)
        secret = getattr(http.auth, "client_secret", None)  # introspection only
        found.append(secret.get_secret_value() if secret is not None else None)
    for server in (getattr(servers, "servers", None) or {}).values():
        for key, value in server.env.items():
            found.extend([value] if SECRET_ENV.search(key) else url_secrets(value))
        found.extend(_header_secrets(server.headers))
        found.extend(url_secrets(server.url))
    llm = getattr(servers, "llm", None)
    if llm is not None:
        found.append(llm.api_key.get_secret_value() if llm.api_key is not None else None)
        found.extend(url_secrets(llm.base_url))
        found.extend(url_secrets(llm.endpoint_url))
    found.extend(url_secrets(getattr(getattr(servers, "runs", None), "database_url", None)))
    alerts = getattr(getattr(config, "profiles", None), "alerts", None)
    if alerts is not None:
        found.extend((alerts.token, alerts.hmac_secret))
    notifications = getattr(servers, "notifications", None)
    for target in getattr(notifications, "targets", None) or []:
        found.extend((target.secret, target.url, target.url.partition("?")[0]))
        found.extend(url_secrets(target.url))
        found.extend(_url_user(target.url))
    return list(dict.fromkeys(s for s in found
                              if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH))


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and its traceback) with secrets as ***."""

    def __init__(self, redactor: Redactor | Iterable[str] = ()) -> None:
        super().__init__()
        self.redactor = redactor if isinstance(redactor, Redactor) else Redactor(redactor)
        self._traceback = logging.Formatter()

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.redactor.secrets

    def add(self, secrets: Iterable[str | None]) -> None:
        """Hide these too, here and wherever this filter's redactor is used."""
        self.redactor.add(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):  # done by the previous handler
            return True
        record._redacted = True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: leave it to the handler
            return True
        clean = self.redactor.text(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._traceback.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.text(record.stack_info)
        return True


def redacting_filter() -> RedactingFilter | None:
    """The filter installed by configure_logging, to add secrets learnt later."""
    for handler in logging.getLogger().handlers:
        for f in handler.filters:
            if isinstance(f, RedactingFilter):
                return f
    return None


def configure_logging(data_dir: Path, level: str = "INFO",
                      secrets: Iterable[str | None] = ()) -> Path:
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / "orchestrator.log"
    root = logging.getLogger()
    root.handlers.clear()
    formatter = logging.Formatter(LOG_FORMAT)
    # The process's one redactor, for the logs and everything else (see module docstring).
    redactor = Redactor([*env_secrets(), *environment_secrets(), *secrets])
    install(redactor)
    redacting = RedactingFilter(redactor)
    for handler in (
        logging.StreamHandler(sys.stderr),
        logging.handlers.RotatingFileHandler(log_file, maxBytes=10_000_000, backupCount=3),
    ):
        handler.setFormatter(formatter)
        handler.addFilter(redacting)
        root.addHandler(handler)
    root.setLevel(level.upper())
    return log_dir
