"""The package's notebook: its percent-format script (rendered and formatted like any source) as nbformat 4 JSON.

The JSON is built here, without Jupyter: keys sorted, no outputs or execution counts, cell ids numbered in order,
so the file is byte-identical on every build and sits in the golden record beside the Python sources.
"""

import json
import re
from dataclasses import dataclass

CELL_MARKER = re.compile(r"^# %%(?P<markdown> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?$")
METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}


@dataclass(frozen=True)
class Cell:
    """One notebook cell: its kind, its source text, and its tags (papermill reads `parameters`)."""

    kind: str  # "code" or "markdown"
    source: str
    tags: tuple[str, ...] = ()


def split_cells(script: str) -> list[Cell]:
    """The cells of a percent-format script; text before the first `# %%` line is dropped."""
    cells, header, lines = [], None, []
    for line in [*script.splitlines(), "# %%"]:
        match = CELL_MARKER.match(line)
        if not match:
            lines.append(line)
            continue
        if header is not None:
            cells.append(_cell(header, lines))
        header, lines = match, []
    return cells


def _cell(header: re.Match, lines: list[str]) -> Cell:
    kind = "markdown" if header["markdown"] else "code"
    if kind == "markdown":  # a Markdown cell's lines are comments in the script
        lines = [line[2:] if line.startswith("# ") else line.removeprefix("#") for line in lines]
    tags = tuple(json.loads(header["tags"])) if header["tags"] else ()
    return Cell(kind, "\n".join(lines).strip("\n"), tags)


def _cell_json(number: int, cell: Cell) -> dict:
    lines = cell.source.splitlines(keepends=True)
    entry = {"cell_type": cell.kind, "id": f"cell-{number:02d}", "metadata": {}, "source": lines}
    if cell.tags:
        entry["metadata"] = {"tags": list(cell.tags)}
    if cell.kind == "code":
        entry |= {"execution_count": None, "outputs": []}
    return entry


def notebook_json(cells: list[Cell]) -> str:
    """nbformat 4.5 JSON as Jupyter writes it (one-space indent, sorted keys), ending in a newline."""
    notebook = {
        "cells": [_cell_json(number, cell) for number, cell in enumerate(cells, start=1)],
        "metadata": METADATA,
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def notebook_from_script(script: str) -> str:
    """notebook.ipynb from the rendered and formatted percent-format script."""
    return notebook_json(split_cells(script))
