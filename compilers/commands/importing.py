"""`fmnist-dsl import`'s flags (its run-time half: runtime/commands/importing.py). The spec writer travels with the
parsed flags, so the run-time half can write a spec without importing the compiler."""

import argparse
from pathlib import Path

from compilers.spec_writer import spec_text

SOURCES = """SOURCE is one of
  model.keras          a Keras model file: its config and weights are read as data, no code of it runs
  file.py:NAME         a PyTorch nn.Module subclass (no-argument constructor) or module instance NAME of file.py,
                       with --weights STATE_DICT.pt (loaded with weights_only=True); this RUNS file.py, as
                       `python file.py` or `torchrun file.py` would: import only files you trust
  model.pt2            a PyTorch exported program (torch.export.save), its ATen ops read back as the layers
                       they stand for; torch.export.load may unpickle parts of it: import only files you trust
  model.onnx           an ONNX graph of the same layers, read as data
Writes OUT/NAME.yaml and the run folder OUT/runs/NAME/{torch,keras}/ (as `fmnist-dsl train` leaves a finished run),
then prints the layer table and how the source and both generated models agree on the official test images."""


def register(subparsers) -> None:
    importing = subparsers.add_parser(
        "import",
        help="read a Keras, PyTorch or ONNX model: its spec, and its twins in both frameworks with its weights",
        description=SOURCES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    importing.add_argument("source", metavar="SOURCE", help="model.keras, file.py:NAME, model.pt2 or model.onnx")
    importing.add_argument("--weights", type=Path, help="a PyTorch state_dict (.pt) for a file.py:NAME source")
    importing.add_argument("--name", help="the spec's name (default: from the source, lowercased)")
    importing.add_argument("--out", type=Path, default=Path("."), help="output folder (default: .)")
    importing.add_argument("--data-dir", help="folder with the Fashion-MNIST files")
    importing.set_defaults(spec_text=spec_text)
