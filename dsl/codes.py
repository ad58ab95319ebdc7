"""The lint codes: stable names, a one-line title each, and the paragraph `lint --explain` and docs/lint.md print."""

from dataclasses import dataclass

# The thresholds the rules state; docs/lint.md quotes the same numbers.
LARGE_DENSE_WEIGHTS = 10_000_000
SMALL_BATCH = 16


@dataclass(frozen=True)
class Code:
    """One lint rule's name and explanation."""

    title: str
    explanation: str


CODES: dict[str, Code] = {
    "FM101": Code(
        "bias directly before BatchNorm",
        "A Dense, Conv2D, DepthwiseConv2D or SeparableConv2D layer with `use_bias: true` and no activation, followed "
        "directly by BatchNorm. BatchNorm "
        "subtracts the batch mean of every channel, so a constant added to a channel before it cancels: the bias "
        "has a zero gradient in exact arithmetic. In floating point its gradient is rounding noise, which Adam, "
        "dividing by the gradient's own scale, turns into visible steps (and weight decay adds to), so the bias "
        "drifts, differently in each framework. Set `use_bias: false`; BatchNorm's own beta is the shift.",
    ),
    "FM102": Code(
        "Dropout directly before BatchNorm",
        "Dropout followed directly by BatchNorm. While training, BatchNorm normalises with the statistics of the "
        "dropped-out activations (scaled by 1 / (1 - rate)), and its moving variance learns those; at inference "
        "Dropout is the identity and the variance BatchNorm sees is smaller, so its output shifts between training "
        "and evaluation (the variance shift). Put Dropout after BatchNorm and its activation.",
    ),
    "FM103": Code(
        "softmax or log_softmax before the end",
        "A softmax or log_softmax that is not the model's output: another layer (even Dropout) follows it. Inside "
        "the network it is only a hidden layer that squashes its features onto a probability simplex, and its "
        "gradient vanishes as it saturates. A Dropout after the output's softmax is worse: while training, the "
        "output the loss reads as probabilities has zeros and values scaled by 1 / (1 - rate). Use softmax or "
        "log_softmax only on the last layer.",
    ),
    "FM104": Code(
        "two activations in a row",
        "An Activation layer directly after a layer that already applies an activation (Dense or Conv2D with "
        "`activation` set, or another Activation layer). relu after relu does nothing; most other pairs (sigmoid "
        "after tanh, relu after softmax) squash the signal twice and are usually a mistake. Keep one of the two.",
    ),
    "FM105": Code(
        "stride larger than its window",
        "A convolution whose stride exceeds its kernel's span (the kernel size, dilated), or a MaxPool or AvgPool "
        "whose stride exceeds its pool size, in height or width. The windows then leave gaps: the rows or columns "
        "between them are never read, so their pixels do not influence the output at all. Make the window at least as "
        "large as the stride.",
    ),
    "FM106": Code(
        "`valid` window drops rows or columns",
        "A `valid` convolution or pool where (input - window) is not a multiple of the stride, in height or width. "
        "The last windows do not fit, and the remaining bottom rows or right columns of the input are never read "
        "(for example a 2x2 pool on a 7x7 map ignores the 7th row and column). Use `same` padding or change the "
        "window or stride so that they tile the input.",
    ),
    "FM107": Code(
        "very large Dense layer after Flatten",
        f"The first Dense layer after a Flatten holds more than {LARGE_DENSE_WEIGHTS:,} weights (inputs times "
        "units). Such a layer holds most of the model's parameters, overfits easily on 60,000 images and makes "
        "every step slow; the feature map before Flatten is usually too large. Shrink it first (a MaxPool or a "
        "strided Conv2D) or use fewer units.",
    ),
    "FM108": Code(
        "BatchNorm with a very small batch",
        f"A model with BatchNorm trained with `batch_size` below {SMALL_BATCH}. BatchNorm normalises each batch "
        "with that batch's own mean and variance; with a few images those estimates are noisy, training is "
        "erratic and the moving statistics used at inference are poor (with one image per batch the variance is "
        f"zero). Use a batch of at least {SMALL_BATCH}, or drop BatchNorm.",
    ),
    "FM109": Code(
        "a schedule that never changes the rate",
        "A `step` schedule whose `step_size` is at least `epochs`, or a `reduce_on_plateau` schedule whose "
        "`patience` is at least `epochs`. The first step comes after `step_size` epochs and the first reduction "
        "after `patience` epochs without improvement, so within the run the learning rate stays where it started "
        "and the schedule is dead weight. Shorten the step or the patience, or train for more epochs.",
    ),
    "FM110": Code(
        "early stopping that can never stop",
        "`early_stopping` whose `patience` is at least `epochs`. Training stops after `patience` epochs without "
        "improvement, which needs more than `patience` epochs, so the run always trains every epoch; with "
        "`restore_best_weights` it still returns the best epoch's weights, but the stopping rule itself never "
        "acts. Lower the patience or raise `epochs`.",
    ),
    "FM111": Code(
        "LayerNorm over a single channel",
        "A LayerNorm whose input has one channel (one feature when flat). It normalises each position's channel "
        "vector, and a vector of one value minus its mean is zero: the output is beta (or zero) whatever the input, "
        "so nothing before it can reach the loss. Normalise a wider layer, or use BatchNorm, which normalises each "
        "channel over the batch.",
    ),
    "FM112": Code(
        "an imported layer that trains differently from its source",
        "A layer that the header comment of a spec made by `fmnist-dsl import` names in a `training differs` line. "
        "The import keeps the source's inference exactly, but some training behaviour of the source is not in the "
        "DSL: PyTorch's nn.BatchNorm updates its running variance with the unbiased batch variance, the DSL's "
        "BatchNorm (Keras's) with the biased one, (n - 1) / n of it for a batch of n; nn.AdaptiveMaxPool2d gives a "
        "tied maximum's whole gradient to one position, the DSL's GlobalMaxPool shares it. Training the spec from "
        "its imported "
        "weights therefore moves away from what training the source would do. Accept it with `lint: {ignore: "
        "[FM112]}` once checked; the generated models train alike in both frameworks.",
    ),
}
