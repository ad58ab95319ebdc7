"""Read a spec file safely and turn every problem into one SpecError with file, line and field."""

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dsl.analysis import first_problem, input_problem
from dsl.dataset import NUM_CLASSES
from dsl.document import compose
from dsl.errors import SpecError
from dsl.shapes import LayerShape, ShapeProblem, infer_shapes
from dsl.spec import Spec

MAX_SPEC_BYTES = 1_000_000  # the largest example spec is under 2 kB; `fmnist-dsl --max-spec-bytes N` raises it


def load_spec(path: str | Path, max_bytes: int | None = None) -> Spec:
    """Load, validate and shape-check the spec at `path`."""
    return parse_spec(read_spec_text(path, max_bytes), Path(path).name)


def read_spec_text(path: str | Path, max_bytes: int | None = None) -> str:
    """The spec file's text, refused unread beyond `max_bytes` (default MAX_SPEC_BYTES): /dev/zero is a spec file too.

    At most max_bytes + 1 bytes are read, so neither a huge file nor an endless device is ever held whole.
    """
    limit = MAX_SPEC_BYTES if max_bytes is None else max_bytes
    try:
        with open(path, "rb") as file:
            data = file.read(limit + 1)
        if len(data) > limit:
            message = f"the spec is larger than {limit:,} bytes (fmnist-dsl --max-spec-bytes N raises the bound)"
            raise SpecError(str(path), None, "", message)
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(str(path), None, "", f"cannot read the spec: {error}") from None


def parse_spec(text: str, filename: str = "<spec>") -> Spec:
    """Validate spec text; `filename` only labels the errors."""
    return parse_document(text, filename)[0]


def parse_document(text: str, filename: str = "<spec>") -> tuple[Spec, yaml.Node]:
    """The validated spec and its YAML node tree, which locates each field's line."""
    root, data = compose(text, filename)
    if not isinstance(data, dict):
        raise SpecError(filename, 1, "", "a spec is a mapping with name, input, layers and training")
    try:
        spec = Spec.model_validate(data)
    except ValidationError as error:
        raise _spec_error(filename, root, data, _deepest(data, error.errors())) from None
    _refuse(filename, root, input_problem(spec))
    _refuse(filename, root, first_problem(spec, _check_shapes(spec, filename, root)))
    return spec, root


def _refuse(filename: str, root: yaml.Node, problem: tuple[str, str] | None) -> None:
    if problem is not None:
        field, message = problem
        raise SpecError(filename, line_of(root, field), field, message)


def _check_shapes(spec: Spec, filename: str, root: yaml.Node) -> list[LayerShape]:
    try:
        shapes = infer_shapes(spec)
    except ShapeProblem as problem:
        raise SpecError(filename, line_of(root, problem.field), problem.field, str(problem)) from None
    if spec.training is not None and shapes[-1].output_shape != (NUM_CLASSES,):
        field = f"layers[{len(shapes) - 1}]"
        message = f"a trained model ends in {NUM_CLASSES} class scores, got the shape {shapes[-1].output_shape}"
        raise SpecError(filename, line_of(root, field), field, message)
    return shapes


def _spec_error(filename: str, root: yaml.Node, data: dict, detail: dict[str, Any]) -> SpecError:
    path = _data_path(data, detail)
    received = detail.get("input")
    message = detail["msg"].removeprefix("Value error, ")
    if detail["type"] == "unknown_layer":
        message = f"unknown layer {_layer_keys(received)}: {message}"
    elif detail["type"] == "union_tag_not_found":
        message = f"needs a {detail['ctx']['discriminator']} key"
    elif detail["type"] != "missing" and not isinstance(received, (dict, list)) and "Received" not in message:
        message = f"{message}. Received: {received!r}"
    return SpecError(filename, _line_of_path(root, path), _field_name(path), message)


# Errors saying that a value is not of a branch's type: for a list or mapping, another branch says more.
TYPE_MISMATCHES = frozenset({"int_type", "float_type", "bool_type", "string_type", "none_required", "literal_error"})


def _deepest(data: dict, details: list[dict[str, Any]]) -> dict[str, Any]:
    """The error that reaches furthest into the spec: of a union's branches, the one that matched the value's form."""

    def reach(detail: dict[str, Any]) -> tuple[int, bool]:
        is_container = isinstance(detail.get("input"), (dict, list))
        return len(_data_path(data, detail)), not (is_container and detail["type"] in TYPE_MISMATCHES)

    return max(details, key=reach)


def _layer_keys(entry: Any) -> str:
    return ", ".join(map(repr, entry)) if isinstance(entry, dict) else repr(entry)


def _data_path(data: Any, detail: dict[str, Any]) -> tuple:
    """Pydantic's error location without union tags: the keys the spec itself has, and the one it lacks."""
    path: list = []
    loc = detail["loc"]
    for position, part in enumerate(loc):
        is_last = position == len(loc) - 1
        if isinstance(data, dict) and part in data or isinstance(data, list) and isinstance(part, int):
            path.append(part)
            data = data[part] if isinstance(data, dict) or part < len(data) else None
        elif is_last and detail["type"] == "missing" and isinstance(data, dict):
            path.append(part)
    return tuple(path)


def _field_name(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def line_of(root: yaml.Node, field: str) -> int | None:
    parts: list = []
    for token in field.replace("[", ".[").split("."):
        if token:
            parts.append(int(token[1:-1]) if token.startswith("[") else token)
    return _line_of_path(root, tuple(parts))


def _line_of_path(root: yaml.Node, path: tuple) -> int | None:
    """The 1-based line of the deepest YAML node that `path` reaches."""
    node, line = root, root.start_mark.line + 1 if root else None
    for part in path:
        child = _child(node, part)
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def _child(node: yaml.Node, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                return value if isinstance(value, (yaml.MappingNode, yaml.SequenceNode)) else key
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None
