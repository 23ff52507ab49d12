"""What a mixer's output is: a method's result or an expert's own probabilities. The stream,
the writers and logit adjustment (which reads another mixer's output) name outputs by these."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodRef:
    """A method's result, saved as the combination `name` unless `saved` is False (the plain
    average as a logit-adjustment base when --average is not asked for)."""

    method: str
    name: str
    saved: bool = True


@dataclass(frozen=True)
class ExpertRef:
    """An expert's own probabilities (a logit-adjustment base); never saved."""

    index: int
    name: str


Ref = MethodRef | ExpertRef


def is_saved(ref: Ref) -> bool:
    return isinstance(ref, MethodRef) and ref.saved
