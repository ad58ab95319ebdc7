"""Which frameworks this install has, and loading them in an order that cannot crash.

`require` is how a command that needs a framework says, in one line, which extra to install. It really imports
the framework: a broken or half-removed install raises ImportError where a package index lookup would find it.

With the pinned wheels, importing `triton` after `tensorflow` segfaults the process, and PyTorch
imports triton lazily (an optimizer step, torch.compile, torchvision). Call `guard_triton()` before
using PyTorch in a process that may also hold TensorFlow; `require` does so when PyTorch is asked for.
"""

import contextlib
import importlib
import importlib.abc
import importlib.util
import os
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


class _SilentTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` through the other finders and runs its import with file descriptor 2 on /dev/null.

    On a CPU where TensorFlow turns its oneDNN operations on (AVX-512), its C++ start-up logs "oneDNN custom
    operations are on" through absl before TF_CPP_MIN_LOG_LEVEL is read, so that setting cannot hide it. A
    Python exception of the import still reaches the caller, with its message, once stderr is back.
    """

    def __init__(self) -> None:
        self.searching = False

    def find_spec(self, name, path, target=None):
        if name != "tensorflow" or self.searching:
            return None
        self.searching = True  # the search below goes through sys.meta_path, this finder included
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.searching = False
        if spec is not None and spec.loader is not None:
            spec.loader = _SilentLoader(spec.loader)
        return spec


class _SilentLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        with _stderr_to_devnull():
            self.loader.exec_module(module)


@contextlib.contextmanager
def _stderr_to_devnull():
    """File descriptor 2 (C++ code writes there, past sys.stderr) on /dev/null, then back."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def silence_tensorflow_start_up() -> None:
    """Keep TensorFlow's C++ start-up lines off the terminal: TF_CPP_MIN_LOG_LEVEL for the lines after its start,
    and the import itself run with stderr on /dev/null for the lines before (see _SilentTensorFlowImport).

    Call it before TensorFlow is imported; it changes no computation.
    """
    # Level 3 hides C++ errors too: a CUDA host logs its start-up lines as errors, and a real failure still
    # raises a Python exception carrying its message.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _SilentTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _SilentTensorFlowImport())
