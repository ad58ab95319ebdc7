"""docs/ and README.md say what is true now: no commit hashes, dates, issue numbers or history (that is git's job)."""

import re

import pytest

from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
DIARY = {
    # 7-40 hex digits with a letter and a digit among them: a commit (a plain number or a word is not one)
    "commit hash": re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b"),
    "date": re.compile(
        rf"\b(?:20[0-9]{{2}}-[01][0-9](?:-[0-3][0-9])?"  # 2026-12 and 2026-12-03
        rf"|{MONTH} [0-3]?[0-9](?:st|nd|rd|th)?\b"  # Dec 3, December 3rd
        rf"|[0-3]?[0-9] {MONTH} 20[0-9]{{2}})"  # 3 December 2026
    ),
    # this project's issues and pull requests; an upstream one is cited as owner/repo#N
    "issue number": re.compile(r"\b(?:issues?|PR|pull request)s? #?[0-9]+\b|(?<![\w/.-])#[0-9]+\b", re.IGNORECASE),
    "history": re.compile(r"\b(?:at commit|from a clone|tried and dropped|what it cost|no longer applies)\b", re.I),
}


def diary_marks(text: str) -> list[str]:
    """Each place in text that dates it or points into its history, as 'line N: kind: match'."""
    return [
        f"line {number}: {kind}: {found.group(0)}"
        for number, line in enumerate(text.splitlines(), 1)
        for kind, pattern in DIARY.items()
        for found in pattern.finditer(line)
    ]


@pytest.mark.parametrize("path", DOCS, ids=lambda path: path.name)
def test_the_docs_carry_no_hashes_dates_issue_numbers_or_history(path):
    marks = diary_marks(path.read_text(encoding="utf-8"))
    assert not marks, f"{path.relative_to(REPO)} is a diary here (say what is true now; git keeps the history):\n" + (
        "\n".join(marks)
    )


PLANTED = [
    ("measured from a clone at commit 20b1f1c", {"commit hash", "history"}),
    ("the full hash 862490b3c4d5e6f708192a3b4c5d6e7f80918a2b", {"commit hash"}),
    ("## On a CPU with AVX-512 BF16 (2 cores, 2026-12-03)", {"date"}),
    ("run on Dec 3 by the benchmark", {"date"}),
    ("measured 3 December 2026", {"date"}),
    ("as issue 19 asked", {"issue number"}),
    ("fixed in #19", {"issue number"}),
    ("Tried and dropped: max pooling over windows", {"history"}),
]


@pytest.mark.parametrize("line,kinds", PLANTED, ids=[line for line, _ in PLANTED])
def test_a_planted_diary_line_is_caught(line, kinds):
    assert {mark.split(": ")[1] for mark in diary_marks(line)} == kinds


def test_figures_names_and_upstream_references_are_not_diary():
    clean = (
        "he_normal's std is sqrt(2 / fan_in) / 0.87962566103423978; float32, bf16 and fc1.bias; 60,000 images, 2000 "
        "of them, 1e-10 relative; 0.405 s at batch 128; keras-team/keras#20585 upstream; Debian's dataset; May we?"
    )
    assert diary_marks(clean) == []
