"""Turn a trained model of one framework into the other's (or ONNX), and measure that predictions agree.

Call `runtime.common.frameworks.guard_triton()` and import torch before Keras in the calling process.
"""

import json
from pathlib import Path

import numpy as np

from runtime.common.constants import EVAL_BATCH
from runtime.common.layouts import to_channels_first
from runtime.interop import weights

ARGMAX_AGREEMENT, PROBABILITY_TOL = 0.999, 1e-4


def load_trained(package, run_dir: Path):
    """(torch_model, keras_model) with the run's trained weights in both, whichever framework trained it."""
    import keras

    from runtime.keras import optim  # noqa: F401  -- registers the optimizers a saved model may name

    torch_model, keras_model = package.build_torch_model(), package.build_keras_model()
    if (run_dir / "model.pt").exists():
        import torch

        torch_model.load_state_dict(torch.load(run_dir / "model.pt", weights_only=True))
        weights.torch_to_keras(torch_model, keras_model)
    elif (run_dir / "model.keras").exists():
        trained = keras.models.load_model(run_dir / "model.keras", compile=False)
        keras_model.set_weights(trained.get_weights())
        weights.keras_to_torch(keras_model, torch_model)
    else:
        raise FileNotFoundError(f"{run_dir} holds neither model.pt nor model.keras")
    return torch_model.eval(), keras_model


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


def export(package, run_dir: Path, to: str, out_dir: Path, images: np.ndarray) -> dict:
    """Write the `to` model under out_dir with parity.json: predictions of source and export on `images`."""
    torch_model, keras_model = load_trained(package, run_dir)
    source = "torch" if (run_dir / "model.pt").exists() else "keras"
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = (
        torch_predict(torch_model, images)
        if source == "torch"
        else keras_model.predict(images, batch_size=EVAL_BATCH, verbose=0)
    )
    if to == "keras":
        keras_model.save(out_dir / "model.keras")
        exported = keras_model.predict(images, batch_size=EVAL_BATCH, verbose=0)
    elif to == "torch":
        import torch

        torch.save(torch_model.state_dict(), out_dir / "model.pt")
        exported = torch_predict(torch_model, images)
    else:
        export_onnx(torch_model, tuple(package.INPUT_SHAPE), out_dir / "model.onnx")
        exported = onnx_predict(out_dir / "model.onnx", images)
    figures = {"source": source, "to": to, "images": len(images), **agreement(package.OUTPUT, reference, exported)}
    (out_dir / "parity.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return figures
