"""`fmnist-dsl lint`: valid specs that would train worse than their author likely meant (codes in dsl/codes.py)."""

import sys
import textwrap
from pathlib import Path

from dsl import SpecError, exits
from dsl.codes import CODES
from dsl.lint import lint_file


def register(subparsers) -> None:
    lint = subparsers.add_parser("lint", help="report suspicious but valid spec choices as file:line: CODE message")
    lint.add_argument("specs", nargs="*", type=Path, metavar="SPEC")
    lint.add_argument("--explain", metavar="CODE", help="print what a code means and how to fix it, then exit")
    lint.set_defaults(run=run_lint)


def run_lint(args) -> int:
    """Exit 0 when every spec is clean, 1 when any has findings, 2 when one does not load."""
    if args.explain is not None:
        return explain(args.explain.upper())
    if not args.specs:
        print("fmnist-dsl: lint: give one or more SPEC files, or --explain CODE", file=sys.stderr)
        return exits.BAD_INPUT
    status = 0
    for path in args.specs:
        try:
            findings = lint_file(path)
        except SpecError as error:
            print(f"fmnist-dsl: {error}", file=sys.stderr)
            status = exits.BAD_INPUT
            continue
        for finding in findings:
            print(finding)
        status = max(status, exits.CHECK_FAILED if findings else 0)
    return status


def explain(code: str) -> int:
    if code not in CODES:
        print(f"fmnist-dsl: lint: unknown code {code!r}; the codes are {', '.join(CODES)}", file=sys.stderr)
        return exits.BAD_INPUT
    print(f"{code}: {CODES[code].title}\n\n{textwrap.fill(CODES[code].explanation, width=100)}")
    return 0


def warn(spec_paths: list[Path]) -> None:
    """Print the specs' findings as warnings on stderr (for `build`, which still builds)."""
    for path in spec_paths:
        for finding in lint_file(path):
            print(f"warning: {finding}", file=sys.stderr)
