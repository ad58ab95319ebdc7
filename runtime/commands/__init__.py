"""The run-time halves of the `fmnist-dsl` commands; compilers/cli.py parses the flags and builds the packages."""
