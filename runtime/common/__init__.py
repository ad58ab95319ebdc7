"""The framework-neutral runtime: numpy (and matplotlib for plots) only, never torch, keras, tensorflow or jax."""
