"""The imported model's twins: the generated PyTorch and Keras models holding the source's weights, their agreement
with the source on test images, and the run folder `fmnist-dsl train` would have left for them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.common import rundir
from runtime.common.constants import FRAMEWORKS, LOSS_EPSILON
from runtime.common.imported import ImportedModel, ImportRefused, flat_layers
from runtime.common.recipe import Recipe
from runtime.interop import export, weights


def build_twins(package, imported: ImportedModel) -> dict:
    """Framework -> the package's model holding the source's weights; ImportRefused when they do not fit."""
    keras_model = package.build_keras_model()
    for row, layer in zip(package.LAYERS, flat_layers(imported.layers), strict=True):
        _check_strides(keras_model.get_layer(row.name), layer)
        variables = {variable.name.split("/")[-1]: variable for variable in keras_model.get_layer(row.name).weights}
        if variables.keys() != layer.weights.keys():
            raise ImportRefused(
                f"{layer.source}: the weights {sorted(layer.weights)} do not fit the layer's {sorted(variables)}"
            )
        for name, values in layer.weights.items():
            if tuple(variables[name].shape) != values.shape:
                raise ImportRefused(
                    f"{layer.source}: weight {name} has shape {values.shape}; the architecture needs "
                    f"{tuple(variables[name].shape)} (a weights file of another model?)"
                )
            variables[name].assign(values)
    torch_model = package.build_torch_model()
    weights.keras_to_torch(keras_model, torch_model)
    return {"torch": torch_model.eval(), "keras": keras_model}


def _check_strides(keras_layer, layer) -> None:
    """The built layer strides as the source's does. A projection's strides are no argument of the spec but the
    block's reduction, so this is where a source projection strided otherwise is refused."""
    strides = layer.arguments.get("strides")
    if strides is not None and tuple(keras_layer.strides) != tuple(strides):
        raise ImportRefused(
            f"{layer.source}: strides {tuple(strides)}; the DSL's layer here has {tuple(keras_layer.strides)} (a "
            "projection shortcut's are its block's reduction)"
        )


def agreement(imported: ImportedModel, twins: dict, images: np.ndarray, labels: np.ndarray) -> dict:
    """Per model (source, torch, keras): outputs' max abs difference from the source, accuracy, differing classes."""
    outputs = {"source": imported.predict(images)}
    outputs |= {framework: export.predict(framework, twins[framework], images) for framework in FRAMEWORKS}
    source_classes = outputs["source"].argmax(axis=1)
    figures = {}
    for model, values in outputs.items():
        classes = values.argmax(axis=1)
        figures[model] = {
            "max_abs_diff": float(np.max(np.abs(values.astype(np.float64) - outputs["source"]))),
            "accuracy": float(np.mean(classes == labels)),
            "differing_predictions": int(np.sum(classes != source_classes)),
            "outputs": values,
        }
    return figures


def write_run(package, twins: dict, run_dir: Path, source: str, splits, outputs: dict) -> None:
    """runs/NAME/{torch,keras}/ as a finished training leaves them: the model, spec.json, run.json, history.json
    (no epochs) and metrics.json on the recipe's test split (`splits`), whose `outputs` per framework are given, so
    `evaluate` and `export` work on them."""
    import keras
    import torch

    recipe = Recipe.from_dict(package.RECIPE)
    versions = {"torch": {"torch": torch.__version__}, "keras": {"keras": keras.__version__}}
    for framework in FRAMEWORKS:
        folder = rundir.prepare_run_dir(run_dir / framework)
        if framework == "torch":
            model_file = {export.MODEL_FILES["torch"]: lambda tmp: torch.save(twins["torch"].state_dict(), tmp)}
        else:
            model_file = {export.MODEL_FILES["keras"]: twins["keras"].save}
        rundir.copy_spec(Path(package.__file__).parent / "spec.json", folder)
        rundir.write_json(folder / "history.json", [])
        info = rundir.run_info(framework, recipe, "cpu", versions[framework], "float32", imported_from=source)
        probabilities = export.probabilities(package.OUTPUT, outputs[framework])
        picked = probabilities[np.arange(len(splits.y_test)), splits.y_test]
        loss = float(np.mean(-np.log(np.clip(picked, LOSS_EPSILON, 1.0))))
        info |= {"status": "finished", "epochs_run": 0}
        # The model, metrics.json and run.json published together, as a finished training run's are.
        rundir.write_results(folder, [], splits, probabilities.argmax(axis=1), loss, info, model_file)
