"""The explorer API's request bodies (pydantic models) and its refusal (``ApiError``):
what ``web``'s endpoints accept, checked before any work is done."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .options import MAX_ABS_DELTA, MAX_SEED

#: Most images an interpolation strip may ask for.
MAX_STEPS = 32


class ApiError(Exception):
    """A request the API refuses: HTTP ``status`` and a message for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class GenerateRequest(BaseModel):
    run: int = Field(ge=0)
    epoch: int | None = Field(default=None, ge=1)
    z: list[float] = Field(min_length=1, max_length=4096)
    #: Shifts along the run's SeFa and GANSpace directions: index -> amount.
    directions: dict[int, float] = Field(default_factory=dict, max_length=64)
    #: A conditional run's class (its answer then also holds a row of every class).
    label: int | None = Field(default=None, ge=0)


class LatentRequest(BaseModel):
    run: int = Field(ge=0)
    seed: int = Field(ge=0, le=MAX_SEED)


class InterpolateRequest(BaseModel):
    run: int = Field(ge=0)
    epoch: int | None = Field(default=None, ge=1)
    seeds: tuple[int, int]
    steps: int = Field(default=8, ge=2, le=MAX_STEPS)
    method: str = "slerp"
    #: A conditional run's classes at the two ends.
    labels: tuple[int, int] | None = None


class TraverseRequest(BaseModel):
    run: int = Field(ge=0)
    epoch: int | None = Field(default=None, ge=1)
    z: list[float] = Field(min_length=1, max_length=4096)
    dim: int = Field(ge=0)
    delta: float = Field(gt=0, le=MAX_ABS_DELTA)
    label: int | None = Field(default=None, ge=0)
