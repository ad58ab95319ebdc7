"""The fmnist-dsl spec language: load, validate and infer shapes, importing no framework."""

from dsl.errors import SpecError
from dsl.loader import load_spec, parse_spec
from dsl.shapes import LayerShape, infer_shapes
from dsl.spec import Spec

__all__ = ["LayerShape", "Spec", "SpecError", "infer_shapes", "load_spec", "parse_spec"]
