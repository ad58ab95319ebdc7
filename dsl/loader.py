"""Read a spec file safely and turn every problem into one SpecError with file, line and field."""

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dsl.errors import SpecError
from dsl.shapes import ShapeProblem, infer_shapes
from dsl.spec import Spec

NUM_CLASSES = 10


def load_spec(path: str | Path) -> Spec:
    """Load, validate and shape-check the spec at `path`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(str(path), None, "", f"cannot read the spec: {error}") from None
    return parse_spec(text, path.name)


def parse_spec(text: str, filename: str = "<spec>") -> Spec:
    """Validate spec text; `filename` only labels the errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise SpecError(filename, line, "", f"malformed YAML: {getattr(error, 'problem', error)}") from None
    if not isinstance(data, dict):
        raise SpecError(filename, 1, "", "a spec is a mapping with name, input, layers and training")
    try:
        spec = Spec.model_validate(data)
    except ValidationError as error:
        raise _spec_error(filename, root, data, error.errors()[0]) from None
    _check_shapes(spec, filename, root)
    return spec


def _check_shapes(spec: Spec, filename: str, root: yaml.Node) -> None:
    try:
        shapes = infer_shapes(spec)
    except ShapeProblem as problem:
        raise SpecError(filename, _line_of(root, problem.field), problem.field, str(problem)) from None
    if spec.training is not None and shapes[-1].output_shape != (NUM_CLASSES,):
        field = f"layers[{len(shapes) - 1}]"
        message = f"a trained model ends in {NUM_CLASSES} class scores, got the shape {shapes[-1].output_shape}"
        raise SpecError(filename, _line_of(root, field), field, message)


def _spec_error(filename: str, root: yaml.Node, data: dict, detail: dict[str, Any]) -> SpecError:
    path = _data_path(data, detail["loc"])
    received = detail.get("input")
    message = detail["msg"].removeprefix("Value error, ")
    if detail["type"] == "unknown_layer":
        message = f"unknown layer {_layer_keys(received)}: {message}"
    elif detail["type"] != "missing" and not isinstance(received, (dict, list)) and "Received" not in message:
        message = f"{message}. Received: {received!r}"
    return SpecError(filename, _line_of_path(root, path), _field_name(path), message)


def _layer_keys(entry: Any) -> str:
    return ", ".join(map(repr, entry)) if isinstance(entry, dict) else repr(entry)


def _data_path(data: Any, loc: tuple) -> tuple:
    """Pydantic's error location without union tags: keep only the keys the spec itself has."""
    path: list = []
    for position, part in enumerate(loc):
        is_last = position == len(loc) - 1
        if isinstance(data, dict) and part in data or isinstance(data, list) and isinstance(part, int):
            path.append(part)
            data = data[part] if isinstance(data, dict) or part < len(data) else None
        elif is_last:
            path.append(part)
    return tuple(path)


def _field_name(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _line_of(root: yaml.Node, field: str) -> int | None:
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
