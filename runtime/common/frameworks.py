"""Which frameworks this install has, and loading them in an order that cannot crash.

`require` is how a command that needs a framework says, in one line, which extra to install. It really imports
the framework: a broken or half-removed install raises ImportError where a package index lookup would find it.

With the pinned wheels, importing `triton` after `tensorflow` segfaults the process, and PyTorch
imports triton lazily (an optimizer step, torch.compile, torchvision). Call `guard_triton()` before
using PyTorch in a process that may also hold TensorFlow; `require` does so when PyTorch is asked for.
"""

import importlib
import sys

# Requirement -> (modules it imports, its name in messages, the extra that installs it), in a safe import order:
# PyTorch (and triton) before TensorFlow.
REQUIREMENTS = {
    "torch": (("torch",), "PyTorch", "torch"),
    "onnx": (("onnx", "onnxruntime"), "ONNX (onnx, onnxruntime)", "torch"),
    "keras": (("keras",), "Keras", "keras"),
}


class MissingFrameworkError(Exception):
    """A command needs a framework (or a package of its extra) that cannot be imported here."""


def guard_triton() -> None:
    """Load triton now if TensorFlow is not loaded yet; otherwise hide it, which PyTorch on CPU tolerates."""
    if "triton" in sys.modules:
        return
    if "tensorflow" in sys.modules:
        sys.modules["triton"] = None  # `import triton` now raises ImportError instead of crashing
        return
    try:
        importlib.import_module("triton")
    except ImportError:
        pass


def _import_error(requirement: str) -> str | None:
    """Why the requirement's modules cannot be imported, or None when they all can."""
    if requirement == "torch":
        guard_triton()
    for module in REQUIREMENTS[requirement][0]:
        try:
            importlib.import_module(module)
        except ImportError as error:
            return str(error).splitlines()[0] if str(error) else type(error).__name__
    return None


def _names(requirements: list[str]) -> str:
    """'A', 'A and B', 'A, B and C'."""
    names = [REQUIREMENTS[name][1] for name in requirements]
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def require(*requirements: str, purpose: str) -> None:
    """Import what `purpose` needs (names of REQUIREMENTS), in a safe order; raise MissingFrameworkError if one fails.

    The message is one line: what the purpose needs, what is missing and why, and the pip command that mends it.
    """
    wanted = [name for name in REQUIREMENTS if name in requirements]
    errors = {name: error for name in wanted if (error := _import_error(name)) is not None}
    if not errors:
        return
    missing = list(errors)
    verb = "is" if len(missing) == 1 else "are"
    extras = ",".join(dict.fromkeys(REQUIREMENTS[name][2] for name in missing))
    raise MissingFrameworkError(
        f"{purpose} needs {_names(wanted)}; {_names(missing)} {verb} not importable here "
        f'({errors[missing[0]]}): pip install "fmnist-dsl[{extras}]"'
    )
