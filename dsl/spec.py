"""The whole spec: a name, an input shape, a list of single-key layer entries, a training section."""

import keyword
from typing import Annotated, Any, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PositiveInt,
    Tag,
    create_model,
)

from dsl.layers import LAYER_TYPES
from dsl.training import Training

# Names a generated package must not take: they would shadow what it imports.
RESERVED_NAMES = frozenset({"dsl", "compilers", "runtime", "generated", "torch", "keras", "tensorflow", "numpy"})


def _check_name(name: str) -> str:
    if not name.isidentifier() or not name.isascii() or keyword.iskeyword(name) or name != name.lower():
        raise ValueError(f"must be a lowercase Python identifier. Received: name={name!r}")
    if name in RESERVED_NAMES:
        raise ValueError(f"{name!r} would shadow a package the generated code imports")
    return name


def _entry_model(kind: str, layer: type) -> type[BaseModel]:
    """The single-key mapping `{kind: {arguments}}` as a model, for validation and the JSON Schema."""
    return create_model(
        f"{kind}Entry",
        __config__=ConfigDict(extra="forbid", frozen=True),
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


class Spec(BaseModel):
    """A network for 28x28 images, declared once for both frameworks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, AfterValidator(_check_name)]
    input: tuple[PositiveInt, PositiveInt, PositiveInt] = Field(description="height, width, channels")
    layers: list[LayerEntry] = Field(min_length=1)
    training: Training | None = None

    def layer_list(self) -> list[tuple[str, BaseModel]]:
        """Each layer as (kind, arguments)."""
        return [next(iter(entry)) for entry in self.layers]
