"""The code review agent: reviews files or a unified diff under configured roots with
well-kept analyzers (ruff, bandit — whichever is installed) and a table of risky patterns
ops code tends to carry; an LLM review is `ask_agent("code_review", ...)`, a run whose
profile sees these tools. It never changes a file: every tool is read-only.

The text it scans (files, diffs of up to 2 MB) is untrusted, so the risky-pattern table runs
on RE2 (linear time; see `_regex`) in a worker thread. Every path a diff names goes through
the same roots check as the other tools before any file is read, and a refusal never says
where an outside path leads.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Annotated, Literal, NamedTuple

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import AfterValidator, BaseModel, Field

from orchestrator_mcp.agents._regex import Pattern, fixed_pattern
from orchestrator_mcp.agents.code_review_settings import CodeReviewAgentSettings
from orchestrator_mcp.agents.commands import require_binary, run_command
from orchestrator_mcp.agents.paths import path_under_roots

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache",
              ".ruff_cache", ".pytest_cache", "dist", "build"}
_GIT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/~^@{}-]{0,199}$")


def check_git_ref(ref: str) -> str:
    if not _GIT_REF.match(ref) or ".." in ref:
        raise ValueError(f"{ref!r} is not a git revision this tool accepts (letters, digits, "
                         "'.', '_', '/', '~', '^', '-'; not starting with '-')")
    return ref


GitRef = Annotated[str, AfterValidator(check_git_ref)]
Severity = Literal["high", "medium", "low"]


class FileText(BaseModel):
    path: str
    start_line: int
    end_line: int
    total_lines: int
    text: str


class SourceFile(BaseModel):
    path: str
    bytes: int
    language: str


class Finding(BaseModel):
    path: str
    line: int
    rule: str
    severity: Severity
    message: str
    excerpt: str


class LintReport(BaseModel):
    tool: str = Field(description="the linter that produced the findings")
    findings: list[Finding]
    truncated: bool = False


class Diff(BaseModel):
    repository: str
    base: str
    files_changed: list[str]
    diff: str
    truncated: bool


_LANGUAGES = {".py": "python", ".sh": "shell", ".js": "javascript", ".ts": "typescript",
              ".go": "go", ".rs": "rust", ".java": "java", ".rb": "ruby", ".yml": "yaml",
              ".yaml": "yaml", ".tf": "terraform", ".sql": "sql", ".c": "c", ".cpp": "c++",
              ".json": "json", ".toml": "toml"}

class _Rule(NamedTuple):
    rule: str
    severity: Severity
    message: str
    pattern: Pattern
    unless: Pattern | None = None  # a match whose own text matches this is not a finding

    def flags(self, line: str) -> bool:
        if self.unless is None:
            return self.pattern.search(line) is not None
        return any(self.unless.search(m.group()) is None for m in self.pattern.finditer(line))


# What a reviewer of ops code flags first (RE2 syntax: no lookaround, hence `unless`).
_RISKY: tuple[_Rule, ...] = (
    _Rule("shell-injection", "high", "subprocess with shell=True runs through a shell",
          fixed_pattern(r"shell\s*=\s*True")),
    _Rule("dynamic-eval", "high", "eval/exec of dynamic text runs arbitrary code",
          fixed_pattern(r"(?:^|[^\w.])(eval|exec)\s*\(")),
    _Rule("os-system", "high", "os.system/os.popen run through a shell",
          fixed_pattern(r"\bos\.(system|popen)\s*\(")),
    _Rule("private-key", "high", "a private key is committed",
          fixed_pattern(r"-----BEGIN (RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----")),
    _Rule("aws-access-key", "high", "an AWS access key id is committed",
          fixed_pattern(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    _Rule("hardcoded-secret", "medium", "a password/secret/token assigned a literal",
          fixed_pattern(r"(?i)\w*(password|passwd|secret|api_?key|token)\w*['\"]?\s*[:=]\s*"
                        r"['\"][^'\"\s]{6,}")),
    _Rule("tls-verify-off", "medium", "TLS verification disabled",
          fixed_pattern(r"verify\s*=\s*False|InsecureSkipVerify:\s*true|"
                        r"curl\s+(-k|--insecure)\b")),
    _Rule("unsafe-yaml", "medium", "yaml.load without SafeLoader can build arbitrary objects",
          fixed_pattern(r"yaml\.load\([^)]*"),
          unless=fixed_pattern(r"Loader\s*=\s*yaml\.(Safe|CSafe)Loader")),
    _Rule("pickle-load", "medium", "unpickling untrusted data runs code",
          fixed_pattern(r"\bpickle\.loads?\(")),
    _Rule("world-writable", "medium", "world-writable permissions",
          fixed_pattern(r"chmod\s+(-R\s+)?0?777|0o777")),
    _Rule("sql-format", "medium", "SQL built by string formatting (injection risk)",
          fixed_pattern(r"(?i)(execute|query)\s*\(\s*f?['\"](SELECT|INSERT|UPDATE|DELETE)"
                        r"[^'\"]*(\{|%s?['\"]\s*%|['\"]\s*\+)")),
    _Rule("bare-except", "low", "bare except hides errors",
          fixed_pattern(r"^\s*except\s*:")),
)


def _language(path: Path) -> str:
    return _LANGUAGES.get(path.suffix.lower(), "text")


def _source_files(root: Path, limit: int) -> list[Path]:
    if root.is_file():
        return [root]
    found: list[Path] = []
    for path in sorted(root.rglob("*")):
        if any(part in _SKIP_DIRS for part in path.relative_to(root).parts):
            continue
        if path.is_file() and path.suffix.lower() in _LANGUAGES:
            found.append(path)
            if len(found) >= limit:
                break
    return found


def _read(path: Path, max_bytes: int) -> str:
    size = path.stat().st_size
    if size > max_bytes:
        raise ToolError(f"{path} is {size} bytes, over the {max_bytes}-byte limit "
                        "(agents.code_review.max_file_bytes)")
    return path.read_text(encoding="utf-8", errors="replace")


def _line_findings(path: str, number: int, line: str) -> list[Finding]:
    return [Finding(path=path, line=number, rule=rule.rule, severity=rule.severity,
                    message=rule.message, excerpt=line.strip()[:200])
            for rule in _RISKY if rule.flags(line)]


def _risky_findings(files: list[Path], max_bytes: int, limit: int) -> LintReport:
    findings: list[Finding] = []
    for path in files:
        if path.stat().st_size > max_bytes:
            continue
        for number, line in enumerate(_read(path, max_bytes).splitlines(), 1):
            findings += _line_findings(str(path), number, line)
            if len(findings) >= limit:
                return LintReport(tool="risky-patterns", findings=findings[:limit],
                                  truncated=True)
    return LintReport(tool="risky-patterns", findings=findings)


_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def parse_unified_diff(diff: str) -> dict[str, dict[int, str]]:
    """path (new side) → {line number: text} of the lines the diff adds."""
    added: dict[str, dict[int, str]] = {}
    path: str | None = None
    number = 0
    for line in diff.splitlines():
        if line.startswith("+++ "):
            name = line[4:].split("\t")[0].strip()
            path = None if name == "/dev/null" else name.removeprefix("b/")
            continue
        hunk = _HUNK.match(line)
        if hunk:
            number = int(hunk[1])
            continue
        if path is None or line.startswith(("--- ", "diff ", "index ")):
            continue
        if line.startswith("+"):
            added.setdefault(path, {})[number] = line[1:]
            number += 1
        elif line.startswith(" "):
            number += 1
    return added


def _tool_binary(name: str) -> str | None:
    beside_python = Path(sys.executable).parent / name
    return str(beside_python) if beside_python.exists() else shutil.which(name)


async def _ruff(paths: list[Path], timeout: float) -> list[Finding]:
    ruff = _tool_binary("ruff")
    assert ruff is not None
    result = await run_command(
        [ruff, "check", "--no-cache", "--output-format", "json", "--select", "E9,F,B,S",
         "--", *map(str, paths)], timeout=timeout)
    if result.timed_out:
        raise ToolError(f"ruff did not finish within {timeout} s")
    try:
        raw = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        raise ToolError(f"ruff failed: {result.stderr.strip()[:500]}") from None
    return [Finding(path=item["filename"], line=item["location"]["row"],
                    rule=f"ruff:{item['code'] or 'syntax'}",
                    severity="high" if (item["code"] or "E9").startswith(("E9", "S"))
                    else "medium", message=item["message"], excerpt="") for item in raw]


async def _bandit(paths: list[Path], timeout: float) -> list[Finding]:
    bandit = _tool_binary("bandit")
    assert bandit is not None
    result = await run_command([bandit, "-q", "-f", "json", "-r", "--", *map(str, paths)],
                               timeout=timeout)
    if result.timed_out:
        raise ToolError(f"bandit did not finish within {timeout} s")
    try:
        raw = json.loads(result.stdout or "{}").get("results", [])
    except json.JSONDecodeError:
        raise ToolError(f"bandit failed: {result.stderr.strip()[:500]}") from None
    severity = {"HIGH": "high", "MEDIUM": "medium", "LOW": "low"}
    return [Finding(path=item["filename"], line=item["line_number"],
                    rule=f"bandit:{item['test_id']}",
                    severity=severity.get(item["issue_severity"], "low"),  # type: ignore[arg-type]
                    message=item["issue_text"], excerpt=item.get("code", "").strip()[:200])
            for item in raw]


async def _analyze(paths: list[Path], settings: CodeReviewAgentSettings) -> LintReport:
    """ruff and bandit over `paths`, whichever is installed; else the parser's syntax
    errors."""
    runs = [(name, run) for name, run in (("ruff", _ruff), ("bandit", _bandit))
            if _tool_binary(name)]
    if not runs:
        reports = [await asyncio.to_thread(_syntax_errors, p, settings.max_file_bytes)
                   for p in paths]
        return LintReport(tool="python-parser",
                          findings=[f for r in reports for f in r.findings])
    found = await asyncio.gather(*(run(paths, settings.timeout) for _, run in runs))
    findings = sorted((f for group in found for f in group), key=lambda f: (f.path, f.line))
    return LintReport(tool="+".join(name for name, _ in runs), findings=findings[:500],
                      truncated=len(findings) > 500)


def build(settings: CodeReviewAgentSettings) -> FastMCP:
    mcp = FastMCP("code_review", instructions="Read code under the configured roots, lint it "
                  "and flag risky patterns; never changes a file.")
    roots = settings.roots

    def resolve(path: str) -> Path:
        return path_under_roots(path, roots)

    @mcp.tool(annotations=READ_ONLY)
    async def list_files(path: str = ".", limit: Annotated[int, Field(ge=1, le=5000)] = 500
                         ) -> list[SourceFile]:
        """Source files under a folder (skipping .git, virtualenvs, node_modules, caches)."""
        files = await asyncio.to_thread(_source_files, resolve(path), limit)
        return [SourceFile(path=str(f), bytes=f.stat().st_size, language=_language(f))
                for f in files]

    @mcp.tool(annotations=READ_ONLY)
    async def read_file(path: str, start_line: Annotated[int, Field(ge=1)] = 1,
                        end_line: Annotated[int, Field(ge=1)] | None = None) -> FileText:
        """Lines of one file (1-based, inclusive), at most 2000 at a time."""
        target = resolve(path)
        if not target.is_file():
            raise ToolError(f"{path!r} is not a file")
        lines = (await asyncio.to_thread(_read, target, settings.max_file_bytes)).splitlines()
        last = min(end_line or len(lines), len(lines), start_line + 1999)
        return FileText(path=str(target), start_line=start_line, end_line=last,
                        total_lines=len(lines), text="\n".join(lines[start_line - 1:last]))

    @mcp.tool(annotations=READ_ONLY)
    async def risky_patterns(path: str = ".",
                             limit: Annotated[int, Field(ge=1, le=2000)] = 200) -> LintReport:
        """Flag shell injection, eval, committed secrets, disabled TLS checks, unsafe YAML or
        pickle, world-writable modes, SQL built from strings, bare excepts."""
        files = await asyncio.to_thread(_source_files, resolve(path), 5000)
        return await asyncio.to_thread(_risky_findings, files, settings.max_file_bytes, limit)

    @mcp.tool(annotations=READ_ONLY)
    async def lint_python(path: str = ".") -> LintReport:
        """Python findings from ruff (syntax, bugs, security rules) and bandit (security),
        whichever is installed; without either, syntax errors from the parser."""
        target = resolve(path)
        return await _analyze([target], settings)

    @mcp.tool(annotations=READ_ONLY)
    async def review_diff(
        diff: Annotated[str, Field(min_length=1, max_length=2_000_000,
                                   description="a unified diff (git diff, diff -u)")],
        repository: Annotated[str | None, Field(description=(
            "work tree the diff applies to (under the roots): its changed Python files are "
            "also run through ruff and bandit"))] = None,
    ) -> LintReport:
        """Review a unified diff: risky patterns in the added lines and, with `repository`,
        analyzer findings on the changed lines. Each finding has file, line and severity.
        Paths in the diff are relative to `repository` (default: the first root) and must
        stay under it and the roots."""
        added = await asyncio.to_thread(parse_unified_diff, diff)
        if not added:
            raise ToolError("no added lines found: is this a unified diff (lines starting "
                            "with '+++ b/' and '@@')?")
        base = (resolve(repository) if repository is not None
                else path_under_roots(".", roots, must_exist=False))
        files = {name: _diff_file(name, base, roots) for name in added}
        findings = await asyncio.to_thread(_diff_findings, added)
        tools = ["risky-patterns"]
        if repository is not None:
            changed = {path: name for name, path in files.items()
                       if name.endswith(".py") and path.is_file()}
            if changed:
                report = await _analyze(list(changed), settings)
                tools.append(report.tool)
                for finding in report.findings:
                    name = changed.get(Path(finding.path).resolve())
                    if name is not None and finding.line in added[name]:
                        findings.append(finding.model_copy(update={"path": name}))
        return LintReport(tool="+".join(tools), findings=findings[:500],
                          truncated=len(findings) > 500)

    @mcp.tool(annotations=READ_ONLY)
    async def git_diff(repository: str = ".", base: GitRef = "HEAD") -> Diff:
        """What changed in a git work tree since `base` (default: uncommitted changes)."""
        git = require_binary("git", "the git package")
        work_tree = resolve(repository)
        names = await run_command([git, "-C", str(work_tree), "diff", "--name-only", base, "--"],
                                  timeout=settings.timeout)
        if names.exit_code != 0:
            raise ToolError(f"git diff failed: {names.stderr.strip()[:500]}")
        patch = await run_command([git, "-C", str(work_tree), "diff", "--no-color", base, "--"],
                                  timeout=settings.timeout, max_output=settings.max_file_bytes)
        return Diff(repository=str(work_tree), base=base,
                    files_changed=names.stdout.split(), diff=patch.stdout,
                    truncated=patch.truncated)

    return mcp


def _diff_file(name: str, base: Path, roots: list[Path]) -> Path:
    """The file a diff path names under `base`, through the roots check (symlinks followed).

    The refusal quotes the path as the diff wrote it, never where it resolves to."""
    try:
        path = path_under_roots(str(base / name), roots, must_exist=False)
    except ToolError:
        path = None
    if path is None or not path.is_relative_to(base):
        raise ToolError(f"the diff names {name!r}, which is outside the repository or the "
                        "allowed roots — review diffs of files under the repository only "
                        "(paths relative to it, as git diff writes them)")
    return path


def _diff_findings(added: dict[str, dict[int, str]]) -> list[Finding]:
    return [finding for path, lines in added.items() for number, line in lines.items()
            for finding in _line_findings(path, number, line)]


def _syntax_errors(target: Path, max_bytes: int) -> LintReport:
    findings = []
    for path in _source_files(target, 5000):
        if path.suffix != ".py" or path.stat().st_size > max_bytes:
            continue
        try:
            ast.parse(_read(path, max_bytes), str(path))
        except SyntaxError as exc:
            findings.append(Finding(path=str(path), line=exc.lineno or 0, rule="syntax",
                                    severity="high", message=exc.msg,
                                    excerpt=(exc.text or "").strip()[:200]))
    return LintReport(tool="python-parser", findings=findings)
