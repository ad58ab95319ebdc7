"""The runtime's own definitions, as source text, for the standalone packages (`fmnist-dsl build --standalone`).

A standalone package imports nothing of fmnist-dsl, yet must compute exactly what the runtime computes: the same
batch order, augmentation, initial weights, schedule, layers. So its templates print the runtime's functions and
classes themselves, read from the runtime's source files (never imported: building stays framework-free), and each
stays defined once. A change to one of them shows in the golden record of the standalone packages.
"""

import ast
import re
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def unsupported(model) -> tuple[str, str] | None:
    """(field, message) of what in the recipe the standalone scripts cannot train, or None."""
    precision = model.recipe["precision"]
    if precision != "float32":
        return (
            "training.precision",
            f"{precision}: the standalone scripts train in float32; build it without --standalone",
        )
    return None


@cache
def _module(path: str) -> tuple[list[str], dict[str, tuple[int, int, bool]]]:
    """The lines of `path` (from the repository root: runtime/..., dsl/...) and, per top-level name, its (first,
    last) line, decorators and the comment lines just above included, and whether it is a function or class."""
    source = (REPO / path).read_text(encoding="utf-8")
    lines = source.splitlines()
    spans = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, ast.Assign):
            names = [target.id for target in node.targets if isinstance(target, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        else:
            continue
        first = min([node.lineno] + [decorator.lineno for decorator in getattr(node, "decorator_list", [])])
        while first > 1 and lines[first - 2].startswith("#"):
            first -= 1
        for name in names:
            spans[name] = (first, node.end_lineno, isinstance(node, (ast.FunctionDef, ast.ClassDef)))
    return lines, spans


def source_of(path: str, *names: str, unqualify: str = "") -> str:
    """The source of the top-level definitions `names` of `path` (runtime/..., dsl/...), in the order given:
    functions and classes two blank lines apart, constants one line after another.

    `unqualify`: a module alias the definitions use (`fmnist.` for runtime.common.data) whose names the standalone
    package defines in the same module, so the prefix is dropped.
    """
    lines, spans = _module(path)
    missing = [name for name in names if name not in spans]
    if missing:
        raise KeyError(f"{path} defines no {', '.join(missing)}")
    text = ""
    for index, name in enumerate(names):
        first, last, is_definition = spans[name]
        if index:
            text += "\n\n\n" if is_definition or spans[names[index - 1]][2] else "\n"
        text += "\n".join(lines[first - 1 : last])
    return re.sub(rf"\b{re.escape(unqualify)}\.", "", text) if unqualify else text
