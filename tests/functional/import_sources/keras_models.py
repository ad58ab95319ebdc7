"""Hand-written Keras models in the style of the source projects, built by the import tests and saved as .keras."""

import keras


def mlp() -> keras.Sequential:
    """A Sequential MLP taking raw pixels: Rescaling(1/255), BatchNorm and Dropout."""
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            keras.layers.Rescaling(1.0 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def strided_cnn() -> keras.Sequential:
    """A CNN with `same` padding and stride 2 (TensorFlow pads the odd pixel at the bottom and right)."""
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False),
            keras.layers.BatchNormalization(momentum=0.9),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(2, padding="same"),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
            keras.layers.Softmax(),
        ]
    )


def with_lstm() -> keras.Sequential:
    """A layer the DSL cannot say."""
    return keras.Sequential([keras.Input(shape=(28, 28)), keras.layers.LSTM(8), keras.layers.Dense(10)])


def residual_cnn() -> keras.Model:
    """A functional CNN with two residual blocks joined by `layers.Add()`: an identity one written shortcut first,
    and a strided one with a 1x1 projection (He-initialised) and a BatchNorm."""
    layers = keras.layers
    inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    y = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    y = layers.Conv2D(8, 3, padding="same")(y)
    x = layers.Activation("relu")(layers.Add()([x, y]))
    y = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(x)
    y = layers.BatchNormalization()(y)
    projection = layers.Conv2D(16, 1, strides=2, use_bias=False, kernel_initializer="he_normal", name="projection")
    shortcut = layers.BatchNormalization()(projection(x))
    x = layers.ReLU()(layers.Add()([y, shortcut]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))
