"""A seed's initial weights for a Keras model: the ones the PyTorch loop starts from too."""

import keras

from runtime.common.initial_weights import initial_weights


def load_initial_weights(model: keras.Model, rows, seed: int) -> None:
    """Give `model` the weights runtime.common.initial_weights draws for `seed`.

    `rows` is the generated package's WEIGHTS table; the arrays are in Keras's layout already.
    """
    for row, values in initial_weights(rows, seed):
        target = next(v for v in model.get_layer(row.layer).weights if v.name.split("/")[-1] == row.variable)
        target.assign(values.astype(target.dtype))
