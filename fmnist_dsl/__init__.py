"""fmnist-dsl's surface for users' own code and tests: `fmnist_dsl.testing` (parity assertions) and the pytest
plugin `fmnist_dsl.pytest_plugin` (`pytest --fmnist-parity`). Like compilers/cli.py, this package joins the
compilers (to build a spec) and the runtime (to run it).
"""
