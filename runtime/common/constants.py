"""Facts both frameworks' halves share, each defined once."""

FRAMEWORKS = ("torch", "keras")  # PyTorch first: in one process triton must load before TensorFlow
NUM_CLASSES = 10
EVAL_BATCH = 1000  # images per forward pass when evaluating or predicting; no effect on the figures
LOSS_EPSILON = 1e-7  # probabilities are clipped to [LOSS_EPSILON, 1 - LOSS_EPSILON] before the log (Keras's rule)
