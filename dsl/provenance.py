"""The header comment `fmnist-dsl import` writes atop the spec it makes, and what lint reads back from it.

A spec has no field for where it came from: the import says it in comments, where a person reads the spec. The
lines are made and read here, so the writer and `lint` (FM112) agree on them.
"""

import re
import textwrap

TRAINING_DIFFERS = "training differs"  # the label of a training meaning of the source the DSL cannot keep
WIDTH = 114  # of a comment line's text, so that with "# " it fits the project's 120 columns
_INDENT = "  "  # of a wrapped line's continuation
_DIFFERS = re.compile(rf"{TRAINING_DIFFERS}: layers\[(\d+)\]: (.*)")


def header_lines(source: str, notes: list[str], changes: list[tuple[int, str]]) -> list[str]:
    """The comment's lines (without "# "): the source, the meanings a reader should know, and each (layer index,
    what differs) in training."""
    lines = [f"Imported by `fmnist-dsl import` from {source}."]
    lines += ["The inference is the source's, exactly; no training section: the DSL's default recipe applies."]
    lines += notes
    lines += [f"{TRAINING_DIFFERS}: layers[{index}]: {change}" for index, change in changes]
    return [part for line in lines for part in textwrap.wrap(line, width=WIDTH, subsequent_indent=_INDENT)]


def training_differences(text: str) -> list[tuple[int, str]]:
    """(layer index, what differs) for each `training differs` line of a spec's leading comment."""
    entries: list[str] = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        comment = line[2:] if line.startswith("# ") else line[1:]
        if comment.startswith(_INDENT) and entries:
            entries[-1] += " " + comment.strip()
        else:
            entries.append(comment.strip())
    found = (_DIFFERS.fullmatch(entry) for entry in entries)
    return [(int(match[1]), match[2]) for match in found if match]
