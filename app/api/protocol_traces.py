"""Request and response models of the stored-refinement routes (`/v1/refinements`): what a trace
shows (never the reference), its list, and the feedback body.

    .venv/bin/python -m pytest -q tests/api/test_refinements.py
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.api.protocol_refine import no_control_chars, simple_reference

MAX_COMMENT_CHARS = 2000


class FeedbackRequest(BaseModel):
    """Labels a served answer after the fact. Strict types; at least one field. Repeated feedback
    is accepted and the last one wins: it replaces the earlier one whole (a field left out is
    cleared)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"rating": -1, "reference": "31", "comment": "forgot to subtract"}, {"rating": 1}]})

    reference: str | None = Field(None, min_length=1, max_length=1000,
                                  description="the right answer; stored only with RISE_TRACES_KEEP_REFERENCES "
                                              "(else 409) and never returned")
    rating: Literal[-1, 1] | None = Field(None, description="1: the final answer was right, -1: wrong")
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)

    _reference = field_validator("reference")(simple_reference)
    _comment = field_validator("comment")(no_control_chars)

    @field_validator("rating", mode="before")
    @classmethod
    def _not_bool(cls, v):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):  # not true, 1.0 or "1"
            raise ValueError("must be the integer -1 or 1")
        return v

    @model_validator(mode="after")
    def _something(self):
        if self.reference is None and self.rating is None and self.comment is None:
            raise ValueError("give at least one of reference, rating, comment")
        return self


class FeedbackOut(BaseModel):
    rating: Literal[-1, 1] | None
    comment: str | None
    reference_given: bool = Field(description="whether a reference was given (it is never shown)")
    at: float = Field(description="Unix seconds")


class TraceOut(BaseModel):
    """One stored refinement: choice 0's result (as /v1/refine answers it) at the top level, every
    choice under `choices` when the chat API ran several."""

    model_config = ConfigDict(extra="allow")

    id: str
    object: Literal["refinement.trace"] = "refinement.trace"
    created: float = Field(description="Unix seconds")
    model: str
    engine: str
    route: str
    question: str
    task: str | None = Field(None, description="the task it was scored under (the request's `task`, else RISE_TASK): "
                                               "what `rise train rise --from-traces` scores it with")
    history: list[dict] = Field(description="earlier chat messages (the chat API's context)")
    config: dict
    final_answer: str | None = None
    final_text: str = ""
    stop_reason: str
    turns: list[dict] = Field(default_factory=list, description="every turn: text, answer, tokens, latency, "
                                                                "confidence where known")
    feedback: FeedbackOut | None


class TraceList(BaseModel):
    object: Literal["list"] = "list"
    data: list[TraceOut]
    has_more: bool = Field(description="more traces are older than the last one: pass its id as `before`")


class Deleted(BaseModel):
    id: str
    object: Literal["refinement.deleted"] = "refinement.deleted"
    deleted: bool = True
