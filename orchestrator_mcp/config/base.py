"""The base of every configuration model."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown keys are errors, so a typo is reported instead of silently ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
