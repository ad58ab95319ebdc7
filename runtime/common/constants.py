"""Facts both frameworks' halves share, each defined once (the data set's own facts: dsl/dataset.py)."""

from dsl.dataset import NUM_CLASSES  # noqa: F401  -- one definition, shared with the spec checks
from dsl.targets import FRAMEWORKS  # noqa: F401  -- PyTorch first: triton must load before TensorFlow

EVAL_BATCH = 1000  # images per forward pass when evaluating or predicting; no effect on the figures
LOSS_EPSILON = 1e-7  # probabilities are clipped to [LOSS_EPSILON, 1 - LOSS_EPSILON] before the log (Keras's rule)
