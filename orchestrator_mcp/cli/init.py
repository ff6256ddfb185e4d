"""`init [DIR]`: a new site's servers.yaml, profiles.yaml and .env, secrets generated.

The YAML files hold choices (which model, which servers) and read every secret from the
environment; `.env` holds the secrets: the HTTP and alert tokens (generated), the model's
key (asked, or taken from OPENAI_API_KEY), and the compose stack's database and Grafana
passwords (generated). All three are written with mode 0600 and never over existing files
unless --force. Without a terminal (or with --non-interactive) nothing is asked: flags and
the environment decide, and what is missing is an error that names the flag.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import secrets
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator_mcp.cli.common import EXIT_CONFIG, EXIT_OK
from orchestrator_mcp.config.llm import PROVIDER_NAMES, LLMSettings, ProviderName

FILES = ("servers.yaml", "profiles.yaml", ".env")
CONTAINER_UID = 1000  # the Dockerfile's user
DEFAULT_MODELS: dict[str, str] = {"openai": "gpt-4o-mini", "ollama": "llama3.1",
                                  "bedrock": "anthropic.claude-3-5-sonnet-20240620-v1:0"}
# Characters a value may have to be written unquoted into .env and read back the same by
# `docker compose --env-file` and by `set -a; . .env` alike.
_ENV_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:/+=@%,")


def add_parsers(commands: Any) -> None:
    parser = commands.add_parser(
        "init", help="write servers.yaml, profiles.yaml and .env for a new site",
        description="Write servers.yaml, profiles.yaml and .env (mode 0600) into DIR: asks "
        "for the LLM provider, model and key (or takes the flags below), generates the HTTP "
        "token, the Alertmanager token and the compose stack's passwords, and prints the "
        "next command. Existing files are kept unless --force.")
    parser.add_argument("dir", nargs="?", type=Path, default=Path("."),
                        help="where to write the files (default: the current directory)")
    parser.add_argument("--provider", choices=PROVIDER_NAMES,
                        help="LLM provider (asked; default openai)")
    parser.add_argument("--model", help="model name (asked; default per provider, e.g. "
                        "gpt-4o-mini)")
    parser.add_argument("--base-url", help="OpenAI-compatible or Ollama endpoint, e.g. "
                        "http://vllm:8000/v1 (asked; default the provider's)")
    parser.add_argument("--region", help="AWS region for bedrock (asked)")
    parser.add_argument("--script", type=Path,
                        help="the scripted provider's YAML file (e.g. examples/scripted-llm.yaml)")
    parser.add_argument("--non-interactive", action="store_true",
                        help="ask nothing: flags and OPENAI_API_KEY decide (also when stdin "
                        "is not a terminal)")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    parser.set_defaults(func=init_command)


class SiteChoices(BaseModel):
    """What `init` writes, validated before anything touches the disk."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderName
    model: str | None = Field(default=None, min_length=1, max_length=200)
    base_url: str | None = None
    region: str | None = Field(default=None, max_length=50)
    script: Path | None = None
    api_key: str | None = Field(default=None, max_length=500, repr=False)

    @field_validator("model", "region")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and (not value.isprintable() or value != value.strip()):
            raise ValueError("must be one line without leading or trailing spaces")
        return value

    @field_validator("api_key")
    @classmethod
    def _env_safe(cls, value: str | None) -> str | None:
        if value is not None and not set(value) <= _ENV_SAFE:
            raise ValueError("has characters .env cannot hold as they are (spaces, quotes, "
                             "$, # or line breaks); write it into .env by hand")
        return value

    def llm_section(self) -> dict[str, Any]:
        """The `llm:` section, checked by servers.yaml's own model (LLMSettings)."""
        section: dict[str, Any] = {"provider": self.provider}
        for key in ("model", "base_url", "region", "script"):
            value = getattr(self, key)
            if value is not None:
                section[key] = str(value)
        LLMSettings.model_validate(section)
        return section


def _ask(question: str, default: str | None, *, secret: bool = False) -> str | None:
    shown = f" [{'****' if secret else default}]" if default else ""
    prompt = f"{question}{shown}: "
    answer = getpass.getpass(prompt) if secret else input(prompt)
    return answer.strip() or default


def _choices(args: argparse.Namespace, interactive: bool) -> SiteChoices:
    from orchestrator_mcp.config.environment import environment

    known_key = environment().llm.api_key
    provider = args.provider
    model, base_url, region, script = args.model, args.base_url, args.region, args.script
    api_key = known_key
    if interactive:
        while provider not in PROVIDER_NAMES:
            provider = _ask(f"LLM provider ({', '.join(PROVIDER_NAMES)})", "openai")
        model = model or _ask("model", DEFAULT_MODELS.get(provider))
        if provider in ("openai", "ollama"):
            base_url = base_url or _ask("endpoint URL (empty: the provider's default)", None)
        if provider == "openai":
            api_key = _ask("API key (OPENAI_API_KEY; empty for a local server without one)",
                           known_key, secret=True)
        if provider == "bedrock":
            region = region or _ask("AWS region", environment().llm.region or "us-east-1")
        if provider == "scripted":
            script = script or Path(_ask("script file", "examples/scripted-llm.yaml") or "")
    provider = provider or "openai"
    if provider in DEFAULT_MODELS:
        model = model or DEFAULT_MODELS[provider]
    if provider == "scripted" and script is None:
        raise ValueError("the scripted provider needs --script FILE")
    if provider == "openai" and not api_key and base_url is None:
        raise ValueError("the openai provider needs a key: export OPENAI_API_KEY before "
                         "`init`, or give --base-url for a local server that needs none")
    return SiteChoices(provider=provider, model=model, base_url=base_url, region=region,
                       script=script, api_key=api_key if provider == "openai" else None)


def _token() -> str:
    return secrets.token_urlsafe(32)


def render(choices: SiteChoices, directory: Path) -> dict[str, str]:
    """The three files' text."""
    template = resources.files("orchestrator_mcp.cli").joinpath("templates")
    llm = yaml.safe_dump({"llm": choices.llm_section()}, sort_keys=False).rstrip()
    servers = template.joinpath("servers.yaml").read_text().replace("# @LLM@", llm)
    env_lines = [
        "# Written by `orchestrator-mcp init`: this site's secrets. Keep it private (mode "
        "0600).",
        "# Read by `docker compose --env-file` (deploy/compose.yaml) and by "
        "`set -a; . ./.env; set +a`.",
        f"ORCH_CONFIG_DIR={directory.resolve()}",
        f"ORCH_HTTP_TOKEN={_token()}",
        f"ORCH_ALERT_TOKEN={_token()}",
        f"POSTGRES_PASSWORD={_token()}",
        f"GRAFANA_ADMIN_PASSWORD={_token()}",
    ]
    if choices.api_key:
        env_lines.append(f"OPENAI_API_KEY={choices.api_key}")
    return {"servers.yaml": servers,
            "profiles.yaml": template.joinpath("profiles.yaml").read_text(),
            ".env": "\n".join(env_lines) + "\n"}


def _write_private(path: Path, text: str, *, replace: bool) -> None:
    """Write with mode 0600 from the first byte; a replaced file is swapped in whole."""
    target = path.with_name(f".{path.name}.init-tmp") if replace else path
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with contextlib.suppress(FileNotFoundError):
        if replace:
            target.unlink()
    descriptor = os.open(target, flags, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    if replace:
        os.replace(target, path)


def init_command(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    if directory.exists() and not directory.is_dir():
        print(f"error: {directory} is not a folder", file=sys.stderr)
        return EXIT_CONFIG
    present = [name for name in FILES if (directory / name).exists()]
    if present and not args.force:
        print(f"error: {', '.join(present)} already exist in {directory}; nothing was "
              "written. Pass --force to overwrite them (new tokens), or choose another "
              "folder", file=sys.stderr)
        return EXIT_CONFIG
    interactive = not args.non_interactive and sys.stdin.isatty()
    try:
        choices = _choices(args, interactive)
        files = render(choices, directory)
    except EOFError:
        print("\nerror: no answer (end of input); nothing was written", file=sys.stderr)
        return EXIT_CONFIG
    except (ValueError, ValidationError) as exc:
        problems = (exc.errors(include_input=False, include_url=False)
                    if isinstance(exc, ValidationError) else None)
        if problems is not None:
            for problem in problems:
                where = ".".join(str(p) for p in problem["loc"]) or "value"
                print(f"error: {where}: {problem['msg']}", file=sys.stderr)
        else:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, text in files.items():
        _write_private(directory / name, text, replace=name in present)
    shown = directory.resolve()
    if os.geteuid() == 0:
        # The image runs as UID 1000 and compose mounts these two files into it; they hold
        # no secrets, but stay private to that user. .env stays root's (compose reads it).
        for name in ("servers.yaml", "profiles.yaml"):
            os.chown(directory / name, CONTAINER_UID, CONTAINER_UID)
        print(f"servers.yaml and profiles.yaml belong to UID {CONTAINER_UID}, the container "
              "image's user, so the containers can read them")
    print(f"wrote {shown}/servers.yaml, profiles.yaml and .env (mode 600; .env holds the "
          f"tokens{' and the model key' if choices.api_key else ''})")
    print("next, the whole stack (orchestrator, worker, PostgreSQL, Prometheus, "
          "Alertmanager, Grafana) from a checkout:")
    print(f"  docker compose --env-file {shown}/.env -f deploy/compose.yaml up -d")
    print("or one server, in a folder with node_modules/, workflows/ and playbooks/:")
    print(f"  set -a; . {shown}/.env; set +a; orchestrator-mcp --config-dir {shown} "
          "serve --http")
    return EXIT_OK
