"""The whole spec: a name, an input shape, a list of single-key layer entries, a training section."""

import keyword
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    Discriminator,
    Field,
    PositiveInt,
    Tag,
    create_model,
)

from dsl.base import SPEC_CONFIG, as_tuple
from dsl.codes import CODES
from dsl.layers import LAYER_TYPES, Residual
from dsl.training import Training

# Names a generated package must not take: they would shadow what it imports.
RESERVED_NAMES = frozenset({"dsl", "compilers", "runtime", "generated", "torch", "keras", "tensorflow", "numpy"})
STANDALONE_FOLDER = "standalone"  # generated/standalone/ holds the standalone packages: no package may replace it


def _check_name(name: str) -> str:
    if not name.isidentifier() or not name.isascii() or keyword.iskeyword(name) or name != name.lower():
        raise ValueError(f"must be a lowercase Python identifier. Received: name={name!r}")
    if name in RESERVED_NAMES:
        raise ValueError(f"{name!r} would shadow a package the generated code imports")
    if name == STANDALONE_FOLDER:
        raise ValueError(f"{name!r} is the folder of the standalone packages in generated/")
    return name


def _entry_model(kind: str, layer: type) -> type[BaseModel]:
    """The single-key mapping `{kind: {arguments}}` as a model, for validation and the JSON Schema."""
    return create_model(
        f"{kind}Entry",
        __config__=SPEC_CONFIG,
        __doc__=layer.__doc__,
        **{kind: (layer, ...)},
    )


ENTRY_MODELS = {kind: _entry_model(kind, layer) for kind, layer in LAYER_TYPES.items()}


def _entry_kind(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value))
    if isinstance(value, BaseModel):
        return next(iter(type(value).model_fields))
    return None


LayerEntry = Annotated[
    Union[tuple(Annotated[model, Tag(kind)] for kind, model in ENTRY_MODELS.items())],  # noqa: UP007
    Discriminator(
        _entry_kind,
        custom_error_type="unknown_layer",
        custom_error_message=f"each layer is a single-key mapping with a key from {sorted(LAYER_TYPES)}",
    ),
]

# A Residual's block is a layer list itself: its model is complete once LayerEntry exists.
Residual.model_rebuild(_types_namespace={"LayerEntry": LayerEntry})
for _model in ENTRY_MODELS.values():
    _model.model_rebuild()


class Limits(BaseModel):
    """Bounds `build` checks, so that a typo such as `units: 1000000` is refused instead of exhausting memory."""

    model_config = SPEC_CONFIG

    parameters: PositiveInt = Field(default=50_000_000, description="most weights, trainable or not, in the model")
    activations: PositiveInt = Field(
        default=10_000_000, description="most values all layers together output for one image"
    )


class LintSettings(BaseModel):
    """Which `fmnist-dsl lint` findings this spec accepts; say why in a comment beside the list."""

    model_config = SPEC_CONFIG

    ignore: as_tuple(tuple[Literal[tuple(CODES)], ...]) = ()


class Spec(BaseModel):
    """A network for 28x28 images, declared once for both frameworks."""

    model_config = SPEC_CONFIG

    name: Annotated[str, AfterValidator(_check_name)]
    input: as_tuple(tuple[PositiveInt, PositiveInt, PositiveInt]) = Field(description="height, width, channels")
    layers: list[LayerEntry] = Field(min_length=1)
    training: Training | None = None
    # Neither changes the model or its training, so neither is part of the normalised spec (nor of its hash).
    limits: Limits = Field(default=Limits(), exclude=True)
    lint: LintSettings = Field(default=LintSettings(), exclude=True)

    def layer_list(self) -> list[tuple[str, BaseModel]]:
        """Each layer as (kind, arguments)."""
        return [next(iter(entry)) for entry in self.layers]
