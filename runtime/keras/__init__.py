"""The Keras half of the runtime: imports keras (any backend), never torch directly."""
