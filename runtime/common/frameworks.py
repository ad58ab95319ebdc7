"""Load the frameworks in an order that cannot crash.

With the pinned wheels, importing `triton` after `tensorflow` segfaults the process, and PyTorch
imports triton lazily (an optimizer step, torch.compile, torchvision). Call `guard_triton()` before
using PyTorch in a process that may also hold TensorFlow.
"""

import importlib
import sys


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
