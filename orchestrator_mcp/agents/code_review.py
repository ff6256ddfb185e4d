"""The code review agent: reads code under configured roots, runs linters, flags risky patterns.

It never changes a file: every tool is read-only.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Annotated, Literal

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import AfterValidator, BaseModel, Field

from orchestrator_mcp.agents.commands import require_binary, run_command
from orchestrator_mcp.agents.paths import path_under_roots
from orchestrator_mcp.config.agents import CodeReviewAgentSettings

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
    severity: Literal["high", "medium", "low"]
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

# (rule, severity, message, pattern): what a reviewer of ops code flags first.
_RISKY: list[tuple[str, Literal["high", "medium", "low"], str, re.Pattern[str]]] = [
    ("shell-injection", "high", "subprocess with shell=True runs through a shell",
     re.compile(r"shell\s*=\s*True")),
    ("dynamic-eval", "high", "eval/exec of dynamic text runs arbitrary code",
     re.compile(r"(?<![\w.])(eval|exec)\s*\(")),
    ("os-system", "high", "os.system/os.popen run through a shell",
     re.compile(r"\bos\.(system|popen)\s*\(")),
    ("private-key", "high", "a private key is committed",
     re.compile(r"-----BEGIN (RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----")),
    ("aws-access-key", "high", "an AWS access key id is committed",
     re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("hardcoded-secret", "medium", "a password/secret/token assigned a literal",
     re.compile(r"(?i)\w*(password|passwd|secret|api_?key|token)\w*['\"]?\s*[:=]\s*"
                r"['\"][^'\"\s]{6,}")),
    ("tls-verify-off", "medium", "TLS verification disabled",
     re.compile(r"verify\s*=\s*False|InsecureSkipVerify:\s*true|curl\s+(-k|--insecure)\b")),
    ("unsafe-yaml", "medium", "yaml.load without SafeLoader can build arbitrary objects",
     re.compile(r"yaml\.load\((?![^)]*Loader\s*=\s*yaml\.(Safe|CSafe)Loader)")),
    ("pickle-load", "medium", "unpickling untrusted data runs code",
     re.compile(r"\bpickle\.loads?\(")),
    ("world-writable", "medium", "world-writable permissions",
     re.compile(r"chmod\s+(-R\s+)?0?777|0o777")),
    ("sql-format", "medium", "SQL built by string formatting (injection risk)",
     re.compile(r"(?i)(execute|query)\s*\(\s*f?['\"](SELECT|INSERT|UPDATE|DELETE)[^'\"]*"
                r"(\{|%s?['\"]\s*%|['\"]\s*\+)")),
    ("bare-except", "low", "bare except hides errors",
     re.compile(r"^\s*except\s*:")),
]


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


def _risky_findings(files: list[Path], max_bytes: int, limit: int) -> LintReport:
    findings: list[Finding] = []
    for path in files:
        if path.stat().st_size > max_bytes:
            continue
        for number, line in enumerate(_read(path, max_bytes).splitlines(), 1):
            for rule, severity, message, pattern in _RISKY:
                if pattern.search(line):
                    findings.append(Finding(path=str(path), line=number, rule=rule,
                                            severity=severity, message=message,
                                            excerpt=line.strip()[:200]))
                    if len(findings) >= limit:
                        return LintReport(tool="risky-patterns", findings=findings,
                                          truncated=True)
    return LintReport(tool="risky-patterns", findings=findings)


def _ruff_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "ruff"
    return str(beside_python) if beside_python.exists() else shutil.which("ruff")


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
        """Python lint findings from ruff (errors, bugs, security rules); without ruff, syntax
        errors from the compiler."""
        target = resolve(path)
        ruff = _ruff_binary()
        if ruff is None:
            return await asyncio.to_thread(_syntax_errors, target, settings.max_file_bytes)
        result = await run_command(
            [ruff, "check", "--no-cache", "--output-format", "json", "--select", "E9,F,B,S",
             "--", str(target)], timeout=settings.timeout)
        if result.timed_out:
            raise ToolError(f"ruff did not finish within {settings.timeout} s")
        try:
            raw = json.loads(result.stdout or "[]")
        except json.JSONDecodeError:
            raise ToolError(f"ruff failed: {result.stderr.strip()[:500]}") from None
        findings = [Finding(path=item["filename"], line=item["location"]["row"],
                            rule=item["code"] or "syntax",
                            severity="high" if (item["code"] or "E9").startswith(("E9", "S"))
                            else "medium",
                            message=item["message"], excerpt="") for item in raw[:500]]
        return LintReport(tool="ruff", findings=findings, truncated=len(raw) > 500)

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
