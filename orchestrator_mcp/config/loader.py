"""Reading servers.yaml / profiles.yaml: YAML, `${VAR}` interpolation, readable errors."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from orchestrator_mcp.config.agents import builtin_agent_profiles
from orchestrator_mcp.config.files import ProfilesFile, ServersFile
from orchestrator_mcp.config.profiles import ProfileConfig
from orchestrator_mcp.errors import UserError

SERVERS_FILE = "servers.yaml"
PROFILES_FILE = "profiles.yaml"
WORKFLOWS_DIR = "workflows"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
Model = TypeVar("Model", bound=BaseModel)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None,
                    f"duplicate key {key!r} (first at line {seen[key] + 1}); "
                    "each name may appear once — rename or merge the entries",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


class ConfigError(UserError):
    """A configuration problem, phrased for the person who edits the file."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Config:
    servers: ServersFile
    profiles: ProfilesFile
    config_dir: Path | None
    servers_path: Path | None
    profiles_path: Path | None


def _key_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif not str(item).startswith(("function-", "tagged-union")):
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _fix_for(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "remove it or fix its spelling (unknown keys are not ignored)"
    if kind == "missing":
        return "add this key"
    if kind in ("value_error", "assertion_error"):
        return ""
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"give a value of the right type ({error['msg'].lower()})"
    return ""


def format_validation_error(path: str, exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        msg = error["msg"].removeprefix("Value error, ")
        fix = _fix_for(error)
        line = f"{path}: {_key_path(error['loc'])}: {msg}"
        problems.append(f"{line} — fix: {fix}" if fix else line)
    return problems


def interpolate(value: Any, path: str, where: str = "", missing: list[str] | None = None) -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string of a parsed YAML tree."""
    missing = [] if missing is None else missing
    if isinstance(value, dict):
        return {k: interpolate(v, path, f"{where}.{k}" if where else str(k), missing)
                for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, path, f"{where}[{i}]", missing) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        missing.append(
            f"{path}: {where}: environment variable {name} is not set — fix: export it, "
            f"or write ${{{name}:-default}}"
        )
        return ""

    return _VAR.sub(substitute, value)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{path}: invalid YAML{where}: {problem}"]) from None


def load_file(path: Path | None, model: type[Model]) -> Model:
    if path is None:
        return model()
    data = _read_yaml(path)
    if data is None:
        return model()
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of keys, not a "
                           f"{type(data).__name__}"])
    missing: list[str] = []
    data = interpolate(data, str(path), missing=missing)
    try:
        loaded = model.model_validate(data)
    except ValidationError as exc:
        problems = format_validation_error(str(path), exc)
        if "mcpServers" in data:
            problems = [p.replace(f"{path}: servers", f"{path}: mcpServers", 1) for p in problems]
        raise ConfigError(missing + problems) from None
    if missing:
        raise ConfigError(missing)
    return loaded


def find_config_dir(explicit: Path | None) -> Path | None:
    """`--config-dir`, else the current directory if it has a config file, else the user dir."""
    if explicit is not None:
        if not explicit.is_dir():
            raise ConfigError([f"--config-dir {explicit}: not a directory — fix: create it or "
                               "point at the folder holding servers.yaml"])
        return explicit
    from orchestrator_mcp.config.paths import user_config_dir

    for candidate in (Path.cwd(), user_config_dir()):
        if (candidate / SERVERS_FILE).is_file() or (candidate / PROFILES_FILE).is_file():
            return candidate
    return None


def load_config(config_dir: Path | None) -> Config:
    """Load and validate both files; every problem found is reported at once."""
    servers_path = profiles_path = None
    if config_dir is not None:
        servers_path = config_dir / SERVERS_FILE if (config_dir / SERVERS_FILE).is_file() else None
        if (config_dir / PROFILES_FILE).is_file():
            profiles_path = config_dir / PROFILES_FILE
    problems: list[str] = []
    servers, profiles = ServersFile(), ProfilesFile()
    try:
        servers = load_file(servers_path, ServersFile)
    except ConfigError as exc:
        problems += exc.problems
    try:
        profiles = load_file(profiles_path, ProfilesFile)
    except ConfigError as exc:
        problems += exc.problems
    if config_dir is not None:
        problems += _load_workflow_folder(config_dir / WORKFLOWS_DIR, profiles)
    _add_agent_profiles(servers, profiles)
    problems += _http_token_from_environment(servers)
    if not problems:
        where = str(profiles_path or PROFILES_FILE)
        problems += _cross_check(profiles, where) + _check_runs_to_start(profiles, where)
        problems += _check_notifications(servers, profiles, str(servers_path or SERVERS_FILE))
    if problems:
        raise ConfigError(problems)
    _add_template_profiles(profiles)
    if config_dir is not None:
        _anchor_stdio_servers(servers, config_dir)
    return Config(servers, profiles, config_dir, servers_path, profiles_path)


def _http_token_from_environment(servers: ServersFile) -> list[str]:
    """ORCH_HTTP_TOKEN wins over `http.token`; set but empty or blank counts as unset."""
    from orchestrator_mcp.config.environment import EnvironmentVariableError, environment

    try:
        token = environment().orchestrator.http_token
    except EnvironmentVariableError as exc:
        return exc.problems
    if token is not None:
        servers.http.token = token.get_secret_value()
    return []


def _add_agent_profiles(servers: ServersFile, profiles: ProfilesFile) -> None:
    """Each enabled built-in agent gets a profile of its name unless profiles.yaml has one."""
    for name, spec in builtin_agent_profiles(servers.agents, servers.knowledge.enabled).items():
        profiles.profiles.setdefault(name, ProfileConfig.model_validate(spec))


def _load_workflow_folder(folder: Path, profiles: ProfilesFile) -> list[str]:
    """Each workflows/<name>.yaml holds one workflow; a name defined twice is an error."""
    from orchestrator_mcp.workflows.definitions import WorkflowDef

    problems: list[str] = []
    if not folder.is_dir():
        return problems
    for path in sorted(folder.glob("*.y*ml")):
        name = path.stem
        if name in profiles.workflows:
            problems.append(f"{path}: workflow {name!r} is also defined under 'workflows:' in "
                            "profiles.yaml — fix: keep one of them")
            continue
        try:
            profiles.workflows[name] = load_file(path, WorkflowDef)
        except ConfigError as exc:
            problems += exc.problems
    return problems


def _cross_check(profiles: ProfilesFile, where: str) -> list[str]:
    """References between sections: profiles named by workflows and alert rules exist."""
    known = set(profiles.profiles) | {"default"}
    problems = []
    for name, workflow in profiles.workflows.items():
        for profile, key in [(workflow.profile, "profile")] + [
                (s.profile, f"steps.{s.id}.profile") for s in workflow.steps if s.profile]:
            if profile not in known:
                problems.append(f"{where}: workflows.{name}.{key}: unknown profile {profile!r} "
                                f"— fix: use one of {', '.join(sorted(known))}")
    for name, profile in profiles.profiles.items():
        for delegate in profile.delegates:
            if delegate not in known:
                problems.append(f"{where}: profiles.{name}.delegates: unknown profile "
                                f"{delegate!r} — fix: use one of {', '.join(sorted(known))}")
    for i, rule in enumerate(profiles.alerts.rules):
        if rule.profile not in known:
            problems.append(f"{where}: alerts.rules[{i}].profile: unknown profile "
                            f"{rule.profile!r} — fix: use one of {', '.join(sorted(known))}")
        if rule.workflow is not None and rule.workflow not in profiles.workflows:
            problems.append(f"{where}: alerts.rules[{i}].workflow: unknown workflow "
                            f"{rule.workflow!r}")
    return problems


def _check_notifications(servers: ServersFile, profiles: ProfilesFile, where: str
                         ) -> list[str]:
    """Notification targets name profiles and alert rules that exist."""
    known_profiles = set(profiles.profiles) | {"default"}
    known_rules = {rule.name for rule in profiles.alerts.rules}
    rule_names = ", ".join(sorted(known_rules)) or "(none: profiles.yaml has no alerts.rules)"
    problems = []
    for i, target in enumerate(servers.notifications.targets):
        for profile in target.profiles:
            if profile not in known_profiles:
                problems.append(f"{where}: notifications.targets[{i}].profiles: unknown "
                                f"profile {profile!r} — fix: use one of "
                                f"{', '.join(sorted(known_profiles))}")
        for rule in target.alert_rules:
            if rule not in known_rules:
                problems.append(f"{where}: notifications.targets[{i}].alert_rules: unknown "
                                f"alert rule {rule!r} — fix: use one of {rule_names}")
    return problems


def _check_runs_to_start(profiles: ProfilesFile, where: str) -> list[str]:
    """Templates name a profile; schedules name a template, workflow or profile that exists,
    with inputs it takes (checked by the validator runs use)."""
    from orchestrator_mcp.runs.errors import RunError
    from orchestrator_mcp.workflows.submit import check_inputs

    known = set(profiles.profiles) | {"default"}
    problems = []
    for name, template in profiles.templates.items():
        if template.profile not in known:
            problems.append(f"{where}: templates.{name}.profile: unknown profile "
                            f"{template.profile!r} — fix: use one of {', '.join(sorted(known))}")
    for name, schedule in profiles.schedules.items():
        key = f"{where}: schedules.{name}"
        try:
            if schedule.template is not None:
                template = profiles.templates.get(schedule.template)
                if template is None:
                    problems.append(f"{key}.template: unknown template {schedule.template!r} "
                                    f"— fix: use one of {_names(profiles.templates)}")
                    continue
                check_inputs(schedule.template, template.parameters, schedule.inputs,
                             owner="template", noun="parameter")
            elif schedule.workflow is not None:
                workflow = profiles.workflows.get(schedule.workflow)
                if workflow is None:
                    problems.append(f"{key}.workflow: unknown workflow {schedule.workflow!r} "
                                    f"— fix: use one of {_names(profiles.workflows)}")
                    continue
                check_inputs(schedule.workflow, workflow.inputs, schedule.inputs)
            elif schedule.profile not in known:
                problems.append(f"{key}.profile: unknown profile {schedule.profile!r} — fix: "
                                f"use one of {', '.join(sorted(known))}")
        except RunError as exc:
            problems.append(f"{key}.inputs: {exc}")
    return problems


def _names(section: dict[str, Any]) -> str:
    return ", ".join(sorted(section)) or "(none defined)"


def _add_template_profiles(profiles: ProfilesFile) -> None:
    """A template with budgets runs under its own profile: its profile's, with the
    template's budgets (so every process that executes its runs applies them)."""
    from orchestrator_mcp.config.templates import template_profile_name

    for name, template in profiles.templates.items():
        overrides = template.budget_overrides()
        if not overrides:
            continue
        base = profiles.profiles.get(template.profile) or ProfileConfig()
        profiles.profiles[template_profile_name(name)] = base.model_copy(update={
            "description": f"{base.description} (budgets of template {name})".strip(),
            "budgets": base.budgets.model_copy(update=overrides)})


def _anchor_stdio_servers(servers: ServersFile, config_dir: Path) -> None:
    """Stdio servers start in the config folder unless `cwd` says otherwise (relative to it),
    so relative paths in `args` mean the same whichever directory a host starts us in."""
    for server in servers.servers.values():
        if server.transport == "stdio":
            server.cwd = (config_dir / server.cwd) if server.cwd else config_dir
            server.cwd = server.cwd.resolve()
