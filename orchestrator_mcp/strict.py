"""The base of every model read from a file a person edits (configuration, workflows).

A module of its own, outside `config`, so that parts defining their own file formats
(workflows, agents) can use it without importing the whole configuration package.
"""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown keys are errors, so a typo is reported instead of silently ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
