"""`fmnist-dsl build` and `fmnist-dsl schema`: specs to packages, and the spec's JSON Schema."""

import json
import sys
from pathlib import Path

from compilers.commands.lint import warn
from compilers.project import build_packages, stale_files, write_packages
from dsl import exits


def register(subparsers) -> None:
    build = subparsers.add_parser("build", help="generate the PyTorch and Keras packages of specs")
    build.add_argument("specs", nargs="+", type=Path, metavar="SPEC")
    build.add_argument(
        "--out", type=Path, help="output folder (default: ./generated, with --standalone ./generated/standalone)"
    )
    build.add_argument("--check", action="store_true", help="write nothing; exit 1 if OUT differs from the specs")
    build.add_argument("--notebook", action="store_true", help="also write notebook.ipynb: train, plot, parity")
    build.add_argument(
        "--standalone",
        action="store_true",
        help="packages that import nothing of fmnist-dsl: the models and their training loops written out",
    )
    build.set_defaults(run=run_build)
    schema = subparsers.add_parser("schema", help="print the JSON Schema of a spec file")
    schema.set_defaults(run=run_schema)


def run_build(args) -> int:
    if args.standalone and args.notebook:
        print(
            "fmnist-dsl: --notebook: a standalone package has no notebook; build one without --standalone",
            file=sys.stderr,
        )
        return exits.BAD_INPUT
    args.out = args.out or Path("generated/standalone" if args.standalone else "generated")
    packages = build_packages(args.specs, notebook=args.notebook, standalone=args.standalone)
    warn(args.specs)  # suspicious but valid: said once, and built all the same
    if not args.check:
        for path in write_packages(packages, args.out):
            print(f"wrote {path}/")
        return 0
    diffs = stale_files(packages, args.out)
    if not diffs:
        print(f"{args.out}/ is up to date with {len(packages)} spec(s)")
        return 0
    sys.stdout.writelines(diffs)
    flags = ["--notebook"] * args.notebook + ["--standalone"] * args.standalone
    specs = " ".join(flags + [str(path) for path in args.specs])
    print(f"\n{args.out}/ is stale; regenerate with: fmnist-dsl build {specs} --out {args.out}", file=sys.stderr)
    return exits.CHECK_FAILED


def run_schema(args) -> int:
    from dsl.spec import Spec

    print(json.dumps(Spec.model_json_schema(), indent=2))
    return 0
