"""One module per `fmnist-dsl` command."""

KERAS_BACKENDS = "tensorflow, jax or torch"


def add_keras_backend_flag(parser, *, every: bool = False) -> None:
    """--keras-backend NAME, checked by the CLI before Keras loads; `every`: NAME may be `all` too."""
    choices = f"{KERAS_BACKENDS}{' (or all: each in turn, one table)' if every else ''}"
    parser.add_argument(
        "--keras-backend", metavar="NAME", help=f"Keras's backend: {choices}; default $KERAS_BACKEND, else Keras's"
    )
