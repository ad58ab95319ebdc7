"""Who may import whom, read from the source (every import, including those inside functions).

dsl imports no framework and nothing of ours; compilers (its CLI entry module aside, the one place joining the two)
imports neither runtime nor a framework; runtime never imports compilers, and of dsl only its facts (DSL_FACTS: defined
once, shared with the spec checks, the compiler and the CLI); runtime/common imports no framework
and none of the framework parts; runtime/torch never the Keras side, runtime/keras never the PyTorch side (except the
adapter for Keras's own PyTorch backend); generated code imports only the standard library, numpy, runtime's neutral
part and its own framework's, its own framework, its own package and the classes of its tables' rows (dsl.tables);
a standalone package (generated/standalone/) imports nothing of fmnist-dsl: the standard library, numpy, its own
files, and its framework (torch with accelerate and tqdm, or keras) in the files of that framework.
"""

import ast
import sys
from pathlib import PurePosixPath

import pytest

from tests.conftest import REPO

FRAMEWORKS = {"torch", "keras", "tensorflow", "jax", "accelerate", "torchvision", "onnx", "onnxruntime"}
OURS = {"dsl", "compilers", "runtime", "generated", "benchmarks", "fmnist_dsl"}
TORCH_SIDE = {"torch", "torchvision", "accelerate", "runtime.torch"}
KERAS_SIDE = {"keras", "tensorflow", "jax", "runtime.keras"}
CLI = PurePosixPath("compilers/cli.py")
# The only parts of dsl that runtime reads: facts defined once, shared with the compiler and the CLI.
DSL_FACTS = {"dsl.dataset", "dsl.targets", "dsl.exits", "dsl.run_flags", "dsl.tables", "dsl.provenance"}
KERAS_ON_TORCH = PurePosixPath("runtime/keras/backends/torch.py")  # Keras's PyTorch backend: torch is its framework
CHECKED = ("dsl", "compilers", "runtime", "generated")
GENERATED_SIDES = {"torch_model": "torch", "train_torch": "torch", "keras_model": "keras", "train_keras": "keras"}
ALLOWED_IN_GENERATED = set(sys.stdlib_module_names) | {"numpy", "runtime.common", "dsl.tables"}
STANDALONE_SIDES = {
    "torch_model": {"torch"},
    "train_torch": {"torch", "accelerate", "tqdm"},
    "keras_model": {"keras"},
    "train_keras": {"keras"},
}


def within(module: str, packages) -> bool:
    """Whether `module` is one of `packages` or inside one."""
    return any(module == package or module.startswith(f"{package}.") for package in packages)


def imports(path: PurePosixPath, source: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import; `from m import n` counts as m.n, relative ones are resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            package = list(path.parent.parts)[: len(path.parent.parts) - node.level + 1] if node.level else []
            base = [*package, *([node.module] if node.module else [])]
            found += [(node.lineno, ".".join([*base, alias.name])) for alias in node.names]
    return found


def broken_rule(path: PurePosixPath, module: str) -> str | None:
    """The rule `path` breaks by importing `module`, if any."""
    top, part = path.parts[0], path.parts[1] if len(path.parts) > 2 else ""
    if top == "dsl" and within(module, FRAMEWORKS | (OURS - {"dsl"})):
        return "dsl imports no framework and nothing of ours"
    if top == "compilers" and path != CLI and within(module, FRAMEWORKS | {"runtime"}):
        return "compilers imports neither runtime nor a framework (compilers/cli.py alone joins them)"
    if top == "runtime":
        return _runtime_rule(path, part, module)
    if top == "generated":
        return _standalone_rule(path, module) if part == "standalone" else _generated_rule(path, module)
    return None


def _runtime_rule(path: PurePosixPath, part: str, module: str) -> str | None:
    if within(module, {"compilers"}):
        return "runtime never imports compilers"
    if within(module, {"dsl"}) and not within(module, DSL_FACTS):
        return f"runtime reads of dsl only its facts ({', '.join(sorted(DSL_FACTS))})"
    if part == "common" and within(module, FRAMEWORKS | {"runtime.torch", "runtime.keras", "runtime.interop"}):
        return "runtime/common imports no framework"
    if part == "torch" and within(module, KERAS_SIDE | {"runtime.interop"}):
        return "runtime/torch never imports the Keras side"
    if part == "keras" and path != KERAS_ON_TORCH and within(module, TORCH_SIDE | {"runtime.interop"}):
        return "runtime/keras never imports the PyTorch side"
    return None


def _generated_rule(path: PurePosixPath, module: str) -> str | None:
    side = GENERATED_SIDES.get(path.stem)
    own = {".".join(path.parts[:2])} | ({side, f"runtime.{side}"} if side else set())
    if within(module, ALLOWED_IN_GENERATED | own):
        return None
    return (
        "generated code imports only the standard library, numpy, runtime's neutral part and its own framework's "
        "(and dsl.tables)"
    )


def _standalone_rule(path: PurePosixPath, module: str) -> str | None:
    own = {".".join(path.parts[:3])} | STANDALONE_SIDES.get(path.stem, set())
    if within(module, set(sys.stdlib_module_names) | {"numpy"} | own):
        return None
    return "a standalone package imports only the standard library, numpy, its own files and their framework"


def violations(path: PurePosixPath, source: str) -> list[str]:
    """`path:line: imports module: rule` for each import that breaks a rule."""
    return [
        f"{path}:{line}: imports {module}: {rule}"
        for line, module in imports(path, source)
        if (rule := broken_rule(path, module))
    ]


def test_every_module_keeps_the_rules():
    files = sorted(path for top in CHECKED for path in (REPO / top).rglob("*.py"))
    assert {path.relative_to(REPO).parts[0] for path in files} == set(CHECKED)
    found = [v for path in files for v in violations(PurePosixPath(path.relative_to(REPO)), path.read_text())]
    assert not found, "\n".join(found)


PLANTED = [
    ("dsl/layers.py", "def f():\n    import torch\n", "dsl imports no framework"),
    ("dsl/spec.py", "from compilers import lowering\n", "nothing of ours"),
    ("dsl/spec.py", "from .. import runtime\n", "nothing of ours"),
    ("compilers/lowering.py", "from runtime.common import data\n", "compilers imports neither"),
    ("compilers/commands/train.py", "import keras\n", "compilers imports neither"),
    ("runtime/common/data.py", "from runtime.torch.init import fans\n", "runtime/common imports no framework"),
    ("runtime/common/plots.py", "import tensorflow as tf\n", "runtime/common imports no framework"),
    ("runtime/common/recipe.py", "from compilers.lowering import lower\n", "runtime never imports compilers"),
    ("runtime/common/recipe.py", "from dsl.loader import load_spec\n", "runtime reads of dsl only its facts"),
    ("runtime/torch/training.py", "from runtime import keras\n", "runtime/torch never"),
    ("runtime/torch/step.py", "import jax\n", "runtime/torch never"),
    ("runtime/keras/training.py", "class A:\n    def f(self):\n        from torch import nn\n", "runtime/keras never"),
    ("runtime/keras/init.py", "from ..torch import init\n", "runtime/keras never"),
    ("generated/mlp/keras_model.py", "import torch\n", "generated code imports only"),
    ("generated/mlp/torch_model.py", "from runtime.keras import optim\n", "generated code imports only"),
    ("generated/mlp/__init__.py", "import keras\n", "generated code imports only"),
    ("generated/mlp/train_torch.py", "import requests\n", "generated code imports only"),
    ("generated/mlp/train_torch.py", "from generated.lenet5 import WEIGHTS\n", "generated code imports only"),
    ("generated/standalone/mlp/train_torch.py", "from runtime.common import data\n", "a standalone package"),
    ("generated/standalone/mlp/torch_model.py", "from dsl.dataset import CLASS_NAMES\n", "a standalone package"),
    ("generated/standalone/mlp/shared.py", "import torch\n", "a standalone package"),
    ("generated/standalone/mlp/train_keras.py", "from tqdm import tqdm\n", "a standalone package"),
    ("generated/standalone/mlp/keras_model.py", "from ..lenet5 import shared\n", "a standalone package"),
    ("generated/standalone/mlp/train_torch.py", "import fmnist_dsl\n", "a standalone package"),
]


@pytest.mark.parametrize(("path", "source", "rule"), PLANTED, ids=[f"{p}:{s.split()[1]}" for p, s, _ in PLANTED])
def test_a_planted_import_is_caught(path, source, rule):
    found = violations(PurePosixPath(path), source)
    assert len(found) == 1 and rule in found[0], found


ALLOWED = [
    ("compilers/cli.py", "from runtime.common import data\nimport torch\n"),
    ("compilers/lowering.py", "from dsl import Spec\nfrom . import ir\n"),
    ("runtime/common/plots.py", "import numpy\nimport matplotlib.pyplot\nfrom runtime.common import data\n"),
    ("runtime/interop/parity.py", "import torch\nimport keras\n"),
    ("runtime/common/data.py", "from dsl.dataset import CLASS_NAMES\nfrom dsl.targets import FRAMEWORKS\n"),
    ("runtime/keras/distributed.py", "def f():\n    import tensorflow\n    import jax\n"),
    (str(KERAS_ON_TORCH), "import torch\n"),
    ("generated/mlp/torch_model.py", "import torch\nfrom torch import nn\nfrom runtime.torch.layers import X\n"),
    ("generated/mlp/train_keras.py", "from pathlib import Path\nimport keras\nfrom runtime.keras import init\n"),
    ("generated/mlp/__init__.py", "def f():\n    from runtime.common import data\n    from .torch_model import M\n"),
    ("generated/mlp/train_torch.py", "from . import RECIPE\nimport numpy as np\n"),
    ("generated/standalone/mlp/train_torch.py", "from accelerate import Accelerator\nfrom tqdm.auto import tqdm\n"),
    ("generated/standalone/mlp/train_keras.py", "import keras\nfrom keras import ops\nfrom .shared import RECIPE\n"),
    ("generated/standalone/mlp/shared.py", "import gzip\nimport numpy as np\n"),
]


@pytest.mark.parametrize(("path", "source"), ALLOWED, ids=[p for p, _ in ALLOWED])
def test_what_the_rules_allow_passes(path, source):
    assert violations(PurePosixPath(path), source) == []
