"""Golden tier: generated/ is exactly what specs/ produce, on every build and machine."""

import ast
import os
import shutil
import subprocess
import sys

import pytest

from compilers.ir import OP_TYPES
from compilers.project import build_packages, stale_files
from compilers.render import environment
from compilers.torch_spelling import ACTIVATION_MODULES
from tests.conftest import REPO, SPECS

REGENERATE = "fmnist-dsl build --notebook specs/*.yaml"  # the golden record carries each notebook
PACKAGE_FILES = sorted(
    ["__init__.py", "torch_model.py", "keras_model.py", "train_torch.py", "train_keras.py", "spec.json"]
)
STANDALONE = REPO / "generated" / "standalone"
STANDALONE_FILES = sorted(
    ["__init__.py", "shared.py", "torch_model.py", "keras_model.py", "train_torch.py", "train_keras.py", "README.md"]
)


def cli(*args: str, cwd=REPO, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "compilers.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )


def test_committed_generated_matches_specs():
    diffs = stale_files(build_packages(SPECS, notebook=True), REPO / "generated")
    assert not diffs, "".join(diffs) + f"\ngenerated/ is stale; regenerate with: {REGENERATE}"


def test_committed_standalone_packages_match_specs():
    packages = build_packages(SPECS, standalone=True)
    assert sorted(package.name for package in packages) == sorted(path.name for path in STANDALONE.iterdir())
    assert all(sorted(package.files) == STANDALONE_FILES for package in packages)
    diffs = stale_files(packages, STANDALONE)
    assert not diffs, (
        "".join(diffs) + "\ngenerated/standalone/ is stale; regenerate with: fmnist-dsl build --standalone specs/*.yaml"
    )


def test_check_flags_a_hand_edit_of_a_standalone_package(tmp_path):
    shutil.copytree(STANDALONE / "mlp", tmp_path / "mlp")
    args = ("build", "--standalone", "--check", str(REPO / "specs/mlp.yaml"), "--out", str(tmp_path))
    assert cli(*args).returncode == 0
    edited = tmp_path / "mlp" / "shared.py"
    edited.write_text(edited.read_text().replace("[seed, epoch]", "[seed, epoch + 1]", 1))
    result = cli(*args)
    assert result.returncode == 1 and "+    perm = np.random.default_rng([seed, epoch]).permutation" in result.stdout
    assert "fmnist-dsl build --standalone" in result.stderr


def test_check_flags_a_hand_edit(tmp_path):
    shutil.copytree(REPO / "generated" / "lenet5", tmp_path / "lenet5")
    assert cli("build", "--check", str(REPO / "specs/lenet5.yaml"), "--out", str(tmp_path)).returncode == 0
    edited = tmp_path / "lenet5" / "torch_model.py"
    edited.write_text(edited.read_text().replace("nn.ReLU()", "nn.Tanh()", 1))
    result = cli("build", "--check", str(REPO / "specs/lenet5.yaml"), "--out", str(tmp_path))
    assert result.returncode == 1
    assert "-        self.act1 = nn.Tanh()" in result.stdout and "fmnist-dsl build" in result.stderr


def test_build_is_byte_identical_across_hash_seeds_and_folders(tmp_path):
    trees = []
    for seed, cwd in (("0", REPO), ("4242", tmp_path)):
        out = tmp_path / f"out{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        assert cli("build", "--notebook", *map(str, SPECS), "--out", str(out), cwd=cwd, env=env).returncode == 0
        trees.append({p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert trees[0] == trees[1]
    names = {path.parts[0] for path in trees[0]}
    assert len(names) == len(SPECS)
    for name in names:
        files = sorted(str(path.relative_to(name)) for path in trees[0] if path.parts[0] == name)
        assert files == sorted([*PACKAGE_FILES, "notebook.ipynb"]), f"{name}: {files}"


def test_build_is_byte_identical_in_standalone_mode_across_hash_seeds(tmp_path):
    trees = []
    for seed in ("0", "4242"):
        out = tmp_path / f"out{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        assert cli("build", "--standalone", *map(str, SPECS), "--out", str(out), env=env).returncode == 0
        trees.append({p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert trees[0] == trees[1] and len(trees[0]) == len(SPECS) * len(STANDALONE_FILES)


@pytest.mark.parametrize("mode", [[], ["--standalone"]], ids=["packages", "standalone"])
def test_build_imports_no_framework(tmp_path, mode):
    code = (
        "import sys; from compilers.cli import main; "
        f"assert main(['build', *{mode!r}, *{list(map(str, SPECS))!r}, '--out', {str(tmp_path)!r}]) == 0; "
        "loaded = [m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.parametrize("path", sorted((REPO / "generated").rglob("*.py")), ids=str)
def test_generated_source_is_valid_python_naming_its_spec(path):
    source = path.read_text()
    ast.parse(source)
    assert source.startswith("# Generated by fmnist-dsl from '") and "Do not edit" in source


TORCH_ACTIVATIONS = {spelling.split("(")[0] for spelling in ACTIVATION_MODULES.values()}  # nn.ReLU, nn.Softmax, ...
MODEL_FOLDERS = [
    *sorted(path.parent for path in (REPO / "generated").glob("*/torch_model.py")),
    *sorted(path.parent for path in STANDALONE.glob("*/torch_model.py")),
]
# The names before they were one: `act<n>` for an Activation layer, `<layer>_act` for a layer's own activation.
TWO_NAMINGS = """class Net(nn.Module):
    def __init__(self) -> None:
        self.fc1 = nn.Linear(784, 10)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(10, 10)
        self.fc2_act = nn.Softmax(dim=1)
"""


def calls(source: str, functions: set[str]) -> list[ast.Call]:
    """The calls of `functions` (dotted names) in `source`, in the order they are written."""
    found = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)]
    return sorted((node for node in found if ast.unparse(node.func) in functions), key=lambda node: node.lineno)


def activation_submodules(source: str) -> list[str]:
    """The attributes a torch_model.py gives an activation module, in the order `__init__` assigns them."""
    assigned = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Assign)]
    modules = [node for node in assigned if isinstance(node.value, ast.Call)]
    ordered = sorted(modules, key=lambda node: node.lineno)
    return [node.targets[0].attr for node in ordered if ast.unparse(node.value.func) in TORCH_ACTIVATIONS]


def numbered_in_order(names: list[str]) -> bool:
    return names == [f"act{n}" for n in range(1, len(names) + 1)]


@pytest.mark.parametrize("folder", MODEL_FOLDERS, ids=lambda path: str(path.relative_to(REPO)))
def test_every_activation_submodule_is_act_n_in_forward_order(folder):
    """One naming for an Activation layer and a layer's own activation alike (`act1`, `act2`, ...), and Keras names
    an Activation layer as PyTorch names its module."""
    names = activation_submodules((folder / "torch_model.py").read_text())
    assert names and numbered_in_order(names), names
    source = (folder / "keras_model.py").read_text()
    keras = calls(source, {"keras.layers.Activation", "layers.Activation"})  # a Sequential's and a functional's
    assert len(keras) == source.count("Activation("), "an Activation call spelled another way went unchecked"
    keras_names = [next(k.value.value for k in call.keywords if k.arg == "name") for call in keras]
    assert set(keras_names) <= set(names), (keras_names, names)


def test_the_naming_rule_sees_two_namings():
    names = activation_submodules(TWO_NAMINGS)
    assert names == ["act1", "fc2_act"] and not numbered_in_order(names)
    assert not numbered_in_order(["act2", "act1"]) and numbered_in_order(["act1", "act2"])


def test_every_ir_op_kind_has_a_macro_in_every_framework():
    for framework in ("torch", "keras"):
        macros = environment().get_template(f"{framework}/_layers.jinja").module
        missing = [op.kind for op in OP_TYPES if not callable(getattr(macros, op.kind, None))]
        assert not missing, f"{framework} templates lack macros for {missing}"


def test_generated_code_has_no_undefined_or_unused_name():
    """pyflakes' rules (ruff's F) over every generated package, the standalone ones included: a name a template
    uses but does not import, or imports and never uses, fails here rather than when a user runs the script."""
    from ruff.__main__ import find_ruff_bin

    command = [find_ruff_bin(), "check", "--isolated", "--no-cache", "--select", "F", str(REPO / "generated")]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
