"""One module per `fmnist-dsl` command."""
