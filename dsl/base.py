"""The one model configuration every spec section shares, and the one lenient spot it needs."""

from typing import Annotated

from pydantic import ConfigDict, Strict

# Strict: a YAML `true` is not the integer 1 and a quoted "32" is not a number, so a retyped value is an error, not a
# silent guess; an int is still a float. No inf or nan anywhere: `.inf` passes `gt=0` and trains on nothing but nan.
SPEC_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

# YAML has lists, not tuples: a tuple field takes a list (its items stay strict).
FromList = Strict(False)


def as_tuple(annotation) -> type:
    """A tuple annotation that also takes a YAML list."""
    return Annotated[annotation, FromList]
