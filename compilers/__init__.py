"""Compile a validated spec into PyTorch and Keras source, importing no framework."""
