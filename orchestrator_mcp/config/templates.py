"""The `templates:` section of profiles.yaml: named goal runs with typed parameters.

A template's goal is a Jinja template rendered in a sandbox with the checked parameter
values (workflows/templates.py). What can be checked without running is checked here, at
load: the goal parses, and it reads only declared parameters. Parameters are declared like
workflow inputs (the same spec model, the same validator when a run starts).
"""

from __future__ import annotations

import functools
import keyword
import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from orchestrator_mcp.config.base import Strict
from orchestrator_mcp.config.profiles import Budgets
from orchestrator_mcp.workflows.definitions import WorkflowInput

MAX_GOAL_TEMPLATE_CHARS = 20_000
_PARAMETER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Words Jinja reads as constants or operators: a parameter of that name could not be read.
_JINJA_WORDS = frozenset({"true", "false", "none", "True", "False", "None", "and", "or", "not",
                          "in", "is", "if", "else", "loop", "self", "range", "dict",
                          "lipsum", "cycler", "joiner", "namespace"})


MAX_PRODUCT = 100_000  # longest string or list `*` may make, and the largest `**` result


@functools.cache
def goal_environment() -> Any:
    """The sandbox goals render in: immutable (no attribute access to internals, no
    mutation of values), undefined names are errors, and `*` / `**` cannot build a huge
    value from a parameter (`{{ '-' * width }}` with width=10**12). Autoescape is off (a
    goal is text for a model, not HTML); parameter values are inserted as data, never
    parsed as template syntax."""
    from jinja2 import StrictUndefined
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GoalSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**":
                if isinstance(right, int | float) and abs(right) > 64:
                    raise SecurityError(f"exponent {right} is too large (limit 64)")
                result = left ** right
                if isinstance(result, int) and result.bit_length() > 256:
                    raise SecurityError("result of ** is too large")
                return result
            for sized, count in ((left, right), (right, left)):
                if isinstance(sized, str | list | tuple) and isinstance(count, int) \
                        and len(sized) * count > MAX_PRODUCT:
                    raise SecurityError(f"'*' would make a value of {len(sized) * count:,} "
                                        f"items (limit {MAX_PRODUCT:,})")
            return left * right

    return GoalSandbox(autoescape=False, undefined=StrictUndefined)


def template_profile_name(template: str) -> str:
    """The profile a template with its own budgets runs under (no configured profile can
    have this name: ':' is not allowed in names)."""
    return f"template:{template}"


class TemplateDef(Strict):
    description: str = ""
    profile: str = Field(default="default", description="the agent profile the run uses")
    parameters: dict[str, WorkflowInput] = Field(
        default_factory=dict, description="typed parameters, declared like workflow inputs")
    goal: str = Field(min_length=1, max_length=MAX_GOAL_TEMPLATE_CHARS,
                      description="Jinja template of the run's goal; reads the parameters")
    budgets: Budgets | None = Field(
        default=None, description="limits that replace the profile's for these runs (only "
        "the keys given)")

    @field_validator("parameters")
    @classmethod
    def _parameter_names(cls, parameters: dict[str, WorkflowInput]) -> dict[str, WorkflowInput]:
        for name in parameters:
            if not _PARAMETER.match(name) or keyword.iskeyword(name) or name in _JINJA_WORDS:
                raise ValueError(f"parameter name {name!r} must be a letter or '_' then up to "
                                 "63 letters, digits or '_', and not a Jinja or Python word")
        return parameters

    @model_validator(mode="after")
    def _goal_reads_parameters(self) -> TemplateDef:
        from jinja2 import TemplateSyntaxError, meta

        try:
            tree = goal_environment().parse(self.goal)
        except TemplateSyntaxError as exc:
            raise ValueError(f"goal: template error at line {exc.lineno}: {exc.message}"
                             ) from None
        unknown = sorted(meta.find_undeclared_variables(tree) - set(self.parameters))
        if unknown:
            raise ValueError(f"goal reads {', '.join(unknown)}, not declared under "
                             "'parameters' — declare them (with a type) or fix the spelling")
        return self

    def budget_overrides(self) -> dict[str, Any]:
        """The budget keys this template sets (the rest are the profile's)."""
        if self.budgets is None:
            return {}
        return {key: getattr(self.budgets, key) for key in self.budgets.model_fields_set}

    def profile_for(self, name: str) -> str:
        """The profile this template's runs use (`name` is the template's)."""
        return template_profile_name(name) if self.budget_overrides() else self.profile
