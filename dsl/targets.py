"""What a spec is compiled to and run with, named once for the DSL, the CLI and the runtime."""

FRAMEWORKS = ("torch", "keras")  # in the order a process must load them: triton before TensorFlow
PRECISIONS = ("float32", "tf32", "bf16", "fp16")  # a recipe's `precision` (docs/semantics.md gives the one meaning)
PARITY_PRECISIONS = ("float32", "tf32")  # `parity --precision`: how its float32 figures compute their dots
JIT_CHOICES = ("auto", "on", "off")  # Keras's `--jit-compile`: XLA for the train step, or Keras's own choice
