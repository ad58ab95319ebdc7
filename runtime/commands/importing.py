"""`fmnist-dsl import`: a Keras, PyTorch or ONNX model file as a spec, with twins in both frameworks holding its
weights.

Everything that can refuse runs first (reading the source, writing and building the spec, fitting the weights,
the agreement on the test images), so a refusal writes nothing.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

from dsl import exits
from dsl.provenance import TRAINING_DIFFERS, header_lines
from runtime.common.constants import FRAMEWORKS
from runtime.common.frameworks import require
from runtime.common.imported import ImportedModel, ImportRefused, flat_layers, spec_layers

AGREEMENT_TOL = 1e-5  # largest output difference between the source and a twin that counts as the same model


def _reader(args) -> tuple[str, callable]:
    """The source's kind and the function that reads it."""
    source = args.source
    if args.weights is not None and ".py:" not in source:
        raise ImportRefused(
            f"--weights {args.weights}: the source file holds its weights; --weights is for file.py:NAME"
        )
    if source.endswith(".keras"):
        from runtime.interop.importing import keras_file

        return Path(source).stem, lambda: keras_file.read(Path(source))
    file, colon, name = source.rpartition(":")
    if colon and file.endswith(".py"):
        from runtime.interop.importing import torch_module

        return name, lambda: torch_module.read(Path(file), name, args.weights)
    if source.endswith(".onnx"):
        from runtime.interop.importing import onnx_file

        return Path(source).stem, lambda: onnx_file.read(Path(source))
    if source.endswith(".pt2"):
        from runtime.interop.importing import exported_program

        return Path(source).stem, lambda: exported_program.read(Path(source))
    raise ImportRefused(
        f"{source}: not a model source; give model.keras, file.py:NAME, model.pt2 or model.onnx "
        "(see fmnist-dsl import -h)"
    )


def spec_name(stem: str) -> str:
    """A spec name from a file or class name: `LeNet5` -> `lenet5`, `my-model` -> `my_model`."""
    name = re.sub(r"\W+", "_", stem).strip("_").lower()
    return name if name and not name[0].isdigit() else f"model_{name}"


def header(imported: ImportedModel) -> list[str]:
    """The spec's header comment: where it came from, the meanings a reader should know, and each layer whose
    training differs from the source's (each change begins with its layer's source, which names one DSL layer)."""
    changes = [
        (next(i for i, layer in enumerate(imported.layers) if _names(layer, change)), change)
        for change in imported.training_changes
    ]
    return header_lines(imported.source, imported.notes, changes)


def _names(layer, change: str) -> bool:
    """Whether a training change begins with the source of `layer` or of a layer inside it (a Residual's)."""
    return any(change.startswith(f"{inner.source}: ") for inner in flat_layers([layer]))


def _table(package, imported: ImportedModel) -> str:
    rows = [f"{'source':<44} {'DSL layer':<30} {'output':>14} {'parameters':>11}"]
    for row, layer in zip(package.LAYERS, flat_layers(imported.layers)):
        kind = f"{row.name} ({row.kind})"
        rows.append(
            f"{layer.source:<44} {kind:<30} {str(row.output_shape):>14} {row.trainable + row.non_trainable:>11}"
        )
    return "\n".join(rows)


def _agreement_lines(figures: dict, images: int) -> list[str]:
    lines = [f"agreement on the {images} official test images (max abs output difference from the source model):"]
    for model, label in (("source", "source model"), ("torch", "generated PyTorch"), ("keras", "generated Keras")):
        values = figures[model]
        lines.append(
            f"  {label:<18} max abs diff {values['max_abs_diff']:.2e}  accuracy {values['accuracy']:.4f}  "
            f"predictions that differ {values['differing_predictions']}"
        )
    return lines


def _prepare(args, build):
    """Read, say and build everything the import writes, or raise ImportRefused: (imported, spec text, package,
    twins, spec path, run folder)."""
    from runtime.interop.importing import twins

    stem, read = _reader(args)
    imported = read()
    name = args.name or spec_name(stem)
    text = args.spec_text(name, imported.input_shape, spec_layers(imported.layers), header(imported))
    spec_path, run_dir = args.out / f"{name}.yaml", args.out / "runs" / name
    if run_dir.exists():
        raise ImportRefused(f"{run_dir} exists: remove it, or give another --name")
    with tempfile.TemporaryDirectory(prefix="fmnist-dsl-import-") as folder:
        staged = Path(folder) / f"{name}.yaml"
        staged.write_text(text, encoding="utf-8")
        package = build(staged)
    return imported, text, package, twins.build_twins(package, imported), spec_path, run_dir


def run(args, build) -> int:
    """Exit 2 (nothing written) when the source cannot be read or said; 1 when the twins disagree with it."""
    require(*FRAMEWORKS, purpose="import")
    from runtime.common.data import DataError
    from runtime.common.recipe import Recipe, load_splits
    from runtime.interop.importing import twins

    try:
        imported, text, package, models, spec_path, run_dir = _prepare(args, build)
    except ImportRefused as error:
        print(f"fmnist-dsl: {error}", file=sys.stderr)
        return exits.BAD_INPUT
    try:  # the test split of the DSL's default recipe (an imported spec has no training section): the official one
        splits = load_splits(Recipe.from_dict(package.RECIPE), args.data_dir)
    except DataError as error:
        print(f"fmnist-dsl: {error}", file=sys.stderr)
        return exits.TRAINING_FAILED
    figures = twins.agreement(imported, models, splits.x_test, splits.y_test)
    print(_table(package, imported))
    print("\n".join(_agreement_lines(figures, len(splits.y_test))))
    for change in imported.training_changes:
        print(f"warning: {spec_path}: {TRAINING_DIFFERS}: {change}", file=sys.stderr)
    outputs = {framework: figures[framework]["outputs"] for framework in FRAMEWORKS}
    worst = max(figures[framework]["max_abs_diff"] for framework in FRAMEWORKS)
    if worst > AGREEMENT_TOL:
        problem = f"the generated models differ from the source by {worst:.2e} (> {AGREEMENT_TOL:g}); nothing written"
        print(f"fmnist-dsl: {problem}", file=sys.stderr)
        return exits.CHECK_FAILED
    _write(
        spec_path,
        text,
        run_dir,
        lambda staging: twins.write_run(package, models, staging, args.source, splits, outputs),
    )
    print(f"wrote {spec_path} and {run_dir}/")
    return 0


def _write(spec_path: Path, text: str, run_dir: Path, write_run) -> None:
    """The run folder staged beside its place and moved in, then the spec: a failure leaves no half run folder."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}-", dir=run_dir.parent))
    try:
        write_run(staging)
        staging.rename(run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    spec_path.write_text(text, encoding="utf-8")
