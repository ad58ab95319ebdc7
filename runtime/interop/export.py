"""Turn a trained model of one framework into the other's (or ONNX), and measure that predictions agree.

Each function imports only the framework it works on: reloading a PyTorch run, or exporting it to ONNX, needs
PyTorch alone; a move between the frameworks needs both (`needed_frameworks` says which, and
`runtime.common.frameworks.require` imports them in a safe order).
"""

import json
from pathlib import Path

import numpy as np

from runtime.common.constants import EVAL_BATCH, FRAMEWORKS
from runtime.common.layouts import to_channels_first
from runtime.common.rundir import reading
from runtime.interop import weights

ARGMAX_AGREEMENT, PROBABILITY_TOL = 0.999, 1e-4
MODEL_FILES = {"torch": "model.pt", "keras": "model.keras"}
WRITER = {"torch": "torch", "keras": "keras", "onnx": "torch"}  # the framework whose model an export starts from


def source_framework(run_dir: Path) -> str:
    """The framework that trained the run: the one whose model file it holds."""
    for framework, name in MODEL_FILES.items():
        if (Path(run_dir) / name).exists():
            return framework
    raise FileNotFoundError(f"{run_dir} holds neither model.pt nor model.keras")


def needed_frameworks(run_dir: Path, to: str) -> tuple[str, ...]:
    """The frameworks an export of the run to `to` loads, in FRAMEWORKS order."""
    needed = {source_framework(run_dir), WRITER[to]}
    return tuple(framework for framework in FRAMEWORKS if framework in needed)


# Both loaders read weights only, into the spec's own model: a shared run folder's file builds no object, runs no code.
def _load_torch(package, run_dir: Path):
    import torch

    model, path = package.build_torch_model(), run_dir / MODEL_FILES["torch"]
    with reading(path):
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def _load_keras(package, run_dir: Path):
    model, path = package.build_keras_model(), run_dir / MODEL_FILES["keras"]
    with reading(path):
        model.load_weights(path)  # the archive's weight arrays; its config (a Lambda's code, say) is never read
    return model


def move(package, model, source: str):
    """A trained model of `source` as the other framework's model of the package, with the same weights."""
    if source == "torch":
        keras_model = package.build_keras_model()
        weights.torch_to_keras(model, keras_model)
        return keras_model
    torch_model = package.build_torch_model()
    weights.keras_to_torch(model, torch_model)
    return torch_model.eval()


def load_trained(package, run_dir: Path, framework: str | None = None):
    """The run's trained model in `framework` (default: the one that trained it)."""
    source = source_framework(run_dir)
    model = (_load_torch if source == "torch" else _load_keras)(package, Path(run_dir))
    return model if framework in (None, source) else move(package, model, source)


def probabilities(output: str, values: np.ndarray) -> np.ndarray:
    """Class probabilities from a model output of kind `output`."""
    values = values.astype(np.float64)
    if output == "probabilities":
        return values
    if output == "log_probabilities":
        return np.exp(values)
    shifted = np.exp(values - values.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def torch_predict(torch_model, images: np.ndarray) -> np.ndarray:
    """Raw PyTorch outputs for NHWC images, in batches."""
    import torch

    with torch.no_grad():
        batches = [
            torch_model(torch.from_numpy(to_channels_first(images[i : i + EVAL_BATCH])))
            for i in range(0, len(images), EVAL_BATCH)
        ]
    return torch.cat(batches).numpy()


def predict(framework: str, model, images: np.ndarray) -> np.ndarray:
    """Raw outputs of a model of `framework` for NHWC images."""
    if framework == "torch":
        return torch_predict(model, images)
    return model.predict(images, batch_size=EVAL_BATCH, verbose=0)


def agreement(output: str, reference: np.ndarray, other: np.ndarray) -> dict:
    """Identical-argmax fraction and largest probability difference of two output arrays."""
    p, q = probabilities(output, reference), probabilities(output, other)
    same = float(np.mean(p.argmax(axis=1) == q.argmax(axis=1)))
    worst = float(np.max(np.abs(p - q)))
    return {
        "argmax_agreement": same,
        "max_probability_diff": worst,
        "ok": same >= ARGMAX_AGREEMENT and worst <= PROBABILITY_TOL,
    }


def export_onnx(torch_model, input_shape: tuple[int, int, int], path: Path) -> None:
    """The PyTorch model as ONNX, batch size free, NCHW input."""
    import torch

    height, width, channels = input_shape
    example = torch.zeros((1, channels, height, width))
    torch.onnx.export(
        torch_model,
        (example,),
        str(path),
        dynamo=False,
        input_names=["images"],
        output_names=["output"],
        dynamic_axes={"images": {0: "batch"}, "output": {0: "batch"}},
    )


def onnx_predict(path: Path, images: np.ndarray) -> np.ndarray:
    """onnxruntime's outputs for NHWC images."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    nchw = to_channels_first(images.astype(np.float32))
    return np.concatenate(
        [session.run(None, {"images": nchw[i : i + EVAL_BATCH]})[0] for i in range(0, len(nchw), EVAL_BATCH)]
    )


def _write(to: str, model, input_shape: tuple[int, int, int], out_dir: Path, images: np.ndarray) -> np.ndarray:
    """Save `model` (of WRITER[to]) as `to` under out_dir; returns the saved model's outputs on `images`."""
    if to == "keras":
        model.save(out_dir / "model.keras")
        return predict("keras", model, images)
    if to == "torch":
        import torch

        torch.save(model.state_dict(), out_dir / "model.pt")
        return torch_predict(model, images)
    export_onnx(model, input_shape, out_dir / "model.onnx")
    return onnx_predict(out_dir / "model.onnx", images)


def export(package, run_dir: Path, to: str, out_dir: Path, images: np.ndarray) -> dict:
    """Write the `to` model under out_dir with parity.json: predictions of source and export on `images`."""
    source = source_framework(run_dir)
    trained = load_trained(package, run_dir)
    reference = predict(source, trained, images)
    moved = trained if WRITER[to] == source else move(package, trained, source)
    out_dir.mkdir(parents=True, exist_ok=True)
    exported = _write(to, moved, tuple(package.INPUT_SHAPE), out_dir, images)
    figures = {"source": source, "to": to, "images": len(images), **agreement(package.OUTPUT, reference, exported)}
    (out_dir / "parity.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return figures
