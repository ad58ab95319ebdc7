"""Render a ResolvedModel through the jinja2 templates and format the result in memory."""

import subprocess
import tempfile
from dataclasses import fields
from functools import cache
from pathlib import Path

import jinja2
from ruff.__main__ import find_ruff_bin

from compilers.ir import ResolvedModel
from compilers.notebook import notebook_from_script
from compilers.standalone import source_of
from dsl import exits
from dsl.dataset import CLASS_NAMES

TEMPLATES = Path(__file__).parent / "templates"
LINE_LENGTH = 100

# Output file -> template; the package's files in the order they are written.
PACKAGE_TEMPLATES = {
    "__init__.py": "package/__init__.py.jinja",
    "torch_model.py": "torch/torch_model.py.jinja",
    "keras_model.py": "keras/keras_model.py.jinja",
    "train_torch.py": "torch/train_torch.py.jinja",
    "train_keras.py": "keras/train_keras.py.jinja",
}
# Asked for with `build --notebook`: the notebook's percent-format script, formatted with the sources.
NOTEBOOK_TEMPLATES = {"notebook.py": "notebook/notebook.ipynb.jinja"}
# `build --standalone`: a package that needs only its framework (compilers/standalone.py).
STANDALONE_TEMPLATES = {
    "__init__.py": "standalone/__init__.py.jinja",
    "shared.py": "standalone/shared.py.jinja",
    "torch_model.py": "standalone/torch_model.py.jinja",
    "keras_model.py": "keras/keras_model.py.jinja",  # imports keras alone already
    "train_torch.py": "standalone/train_torch.py.jinja",
    "train_keras.py": "standalone/train_keras.py.jinja",
}
STANDALONE_README = "standalone/README.md.jinja"


@cache
def environment() -> jinja2.Environment:
    """The one strict environment: an unknown name in a template is an error, not an empty string."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    # Every value reaches the source as a Python literal, so spec text can never become code.
    env.filters["py"] = ascii
    env.filters["row"] = table_row
    env.globals["keras_args"] = lambda **values: chosen_args(KERAS_DEFAULTS, values)
    env.globals["torch_args"] = lambda **values: chosen_args(TORCH_DEFAULTS, values)
    # A bias initialiser only where there is a bias; a pool's strides only where they are not its size (the default
    # of a pool's strides in both frameworks, where a convolution's is 1).
    env.globals["bias_initializer"] = lambda op: op.bias_initializer if op.use_bias else None
    env.globals["pool_strides"] = lambda op, name: "" if op.strides == op.pool_size else f", {name}={op.strides!a}"
    return env


# The frameworks' own defaults of the arguments the layer macros pass through keras_args / torch_args: a generated
# call leaves them out, so it shows only what the spec chose. Arguments whose default differs between the frameworks
# (BatchNorm's epsilon and momentum, LayerNorm's epsilon) are printed by the macros themselves, always.
KERAS_DEFAULTS = {
    "strides": (1, 1),
    "padding": "valid",
    "dilation_rate": (1, 1),
    "groups": 1,
    "depth_multiplier": 1,
    "use_bias": True,
    "kernel_initializer": "glorot_uniform",
    "depthwise_initializer": "glorot_uniform",
    "pointwise_initializer": "glorot_uniform",
    "bias_initializer": "zeros",
}
TORCH_DEFAULTS = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1, "bias": True}


def chosen_args(defaults: dict, values: dict) -> str:
    """`, name=value` (literals, by ascii) for each value that is neither None (nothing to say) nor the default."""
    return "".join(
        f", {name}={ascii(value)}"
        for name, value in values.items()
        if value is not None and not (name in defaults and defaults[name] == value)
    )


def table_row(row) -> str:
    """A LAYERS or WEIGHTS row (dsl.tables) as the call that makes it: every field, in the class's order."""
    return f"{type(row).__name__}({', '.join(ascii(getattr(row, field.name)) for field in fields(row))})"


def format_sources(sources: dict[str, str]) -> dict[str, str]:
    """Python files formatted by the pinned ruff in one call, ignoring any config file around them and keeping no
    cache (it would be a .ruff_cache/ folder in the user's current directory)."""
    with tempfile.TemporaryDirectory() as folder:
        for name, text in sources.items():
            Path(folder, name).write_text(text, encoding="utf-8")
        command = [find_ruff_bin(), "format", "--isolated", "--no-cache", f"--line-length={LINE_LENGTH}", folder]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"ruff could not format the generated code:\n{result.stderr}")
        return {name: Path(folder, name).read_text(encoding="utf-8") for name in sources}


def render_package(model: ResolvedModel, notebook: bool = False) -> dict[str, str]:
    """Every file of the generated package: name -> text; with `notebook`, notebook.ipynb too."""
    templates = PACKAGE_TEMPLATES | (NOTEBOOK_TEMPLATES if notebook else {})
    sources = {name: environment().get_template(template).render(model=model) for name, template in templates.items()}
    files = format_sources(sources)
    if notebook:
        files["notebook.ipynb"] = notebook_from_script(files.pop("notebook.py"))
    return {**files, "spec.json": model.spec_json}


def render_standalone(model: ResolvedModel) -> dict[str, str]:
    """Every file of the standalone package: name -> text."""
    env = environment()
    inits = {
        line.split("(")[0].removeprefix("torch_init.") for line in model.init_lines if line.startswith("torch_init.")
    }
    context = {"model": model, "source": source_of, "class_names": CLASS_NAMES, "exits": exits}
    context["torch_inits"] = sorted(inits)  # Keras's initialisers nn.init lacks, defined in torch_model.py
    sources = {name: env.get_template(template).render(context) for name, template in STANDALONE_TEMPLATES.items()}
    return {**format_sources(sources), "README.md": env.get_template(STANDALONE_README).render(context)}
