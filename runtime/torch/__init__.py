"""The PyTorch half of the runtime: imports torch (and accelerate), never keras, tensorflow or jax."""
