"""`fmnist-dsl import`: one reader per source format, each mapping its layers to the DSL through a table."""
