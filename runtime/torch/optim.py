"""The spec's optimizer section as a native torch.optim optimizer (the DSL's reference semantics).

The section arrives complete (the DSL fills in every default), so no default is written here.
"""

import torch


def from_config(params, config: dict) -> torch.optim.Optimizer:
    """torch.optim.SGD or Adam from {"name": "sgd", learning_rate, momentum, nesterov, weight_decay} or
    {"name": "adam", learning_rate, beta_1, beta_2, epsilon, weight_decay}; weight decay is L2 added to the gradient.
    """
    name = config["name"]
    if name == "sgd":
        momentum = float(config["momentum"])
        return torch.optim.SGD(
            params,
            lr=float(config["learning_rate"]),
            momentum=momentum,
            # Nesterov without momentum is plain SGD, which torch refuses to spell as nesterov=True.
            nesterov=bool(config["nesterov"]) and momentum > 0,
            weight_decay=float(config["weight_decay"]),
            fused=True,  # one kernel per parameter, on CPU too: measured 1.2-2.3x faster than foreach
        )
    if name == "adam":
        return torch.optim.Adam(
            params,
            lr=float(config["learning_rate"]),
            betas=(float(config["beta_1"]), float(config["beta_2"])),
            eps=float(config["epsilon"]),
            weight_decay=float(config["weight_decay"]),
            fused=True,  # on CPU, measured 4.7-6.7x faster than foreach
        )
    raise ValueError(f"unknown optimizer {name!r}: expected 'sgd' or 'adam'")
