"""What generated packages and the CLI run on, split by what each part imports (docs/design.md):

- `runtime.common`: numpy only. Data, the recipe, schedules and stopping rules, run folders, metrics, plots,
  layouts, framework-free initial weights.
- `runtime.torch`: PyTorch only (layers, initialisers, optimizers, the training loop).
- `runtime.keras`: Keras only, on any Keras backend (optimizers, the training loop).
- `runtime.interop`: the tools that need both frameworks: weight transfer, parity, export, evaluation, introspection.
- `runtime.commands`: the run-time halves of the `fmnist-dsl` commands.
"""
