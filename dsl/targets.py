"""The frameworks a spec is compiled to, in the order a process must load them (triton before TensorFlow)."""

FRAMEWORKS = ("torch", "keras")
