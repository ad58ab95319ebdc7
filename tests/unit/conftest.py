"""The unit tier runs without a framework: a run of this tier alone fails if any test loaded one."""

import sys
from pathlib import Path

import pytest

FRAMEWORKS = ("torch", "keras", "tensorflow", "jax")
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session", autouse=True)
def no_framework_loaded(request):
    """After the last test: a test body (not only a module's imports) must not have loaded a framework either."""
    yield
    if all(Path(item.path).is_relative_to(HERE) for item in request.session.items):  # other tiers load them
        loaded = [name for name in FRAMEWORKS if name in sys.modules]
        assert not loaded, f"the unit tier loaded {loaded}; such tests belong in tests/functional"
