"""
Push and grasp Q-networks by name: colour + height map in, one Q value per pixel and rotation out.

Shared by the policy node (inference) and the trainer (learning); no ROS in here. Two variants
are registered: `vpg` (rotating_q_network.py: VPG's separate push and grasp networks, made
rotation-equivariant and light enough to train from scratch on a CPU) and `multitask`
(multitask_q_network.py: Pinto & Gupta's shared trunk with a push inverse model). Weights
record their variant and config, so `build_q_network` can rebuild any of them; the interface
both implement is q_network_base.QNetwork.
"""

import torch
from torch.utils.flop_counter import FlopCounterMode

from vpg_policy.multitask_q_network import MultitaskQNetwork
from vpg_policy.rotating_q_network import VpgQNetwork

_VARIANTS = {cls.variant: cls for cls in (VpgQNetwork, MultitaskQNetwork)}


def register_variant(cls):
    """Make a QNetwork subclass buildable by name (its `variant`); usable as a decorator."""
    if not cls.variant:
        raise ValueError(f'{cls.__name__} has no variant name')
    _VARIANTS[cls.variant] = cls
    return cls


def variants():
    """List the names of the registered variants."""
    return sorted(_VARIANTS)


def variant_class(variant):
    """Return the QNetwork subclass registered as `variant` (ValueError when unknown)."""
    if variant not in _VARIANTS:
        raise ValueError(f'unknown Q-network variant {variant!r} (known: {variants()})')
    return _VARIANTS[variant]


def build_q_network(variant='vpg', config=None, seed=None):
    """
    Build a freshly initialised network of a registered variant.

    config: the variant's config_class instance (its defaults when None). seed: when given,
    the initial weights depend on it alone (a private generator state is used, the global
    torch RNG is left as it was).
    """
    cls = variant_class(variant)
    config = config if config is not None else cls.config_class()
    if seed is None:
        return cls(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(config)


def parameter_count(model):
    """Count the trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def forward_flops(model, height=224, width=224):
    """
    Count the FLOPs (multiply and add separately) of one full forward on an H x W heightmap.

    Returns a dict: `conv` (convolutions, counted by torch's FlopCounterMode), `resample`
    (the rotations' bilinear sampling) and `total`.
    """
    inputs = torch.zeros(1, 4, height, width, device=model.device)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(inputs)
    conv = int(counter.get_total_flops())
    resample = int(model.resample_flops(height, width)) if hasattr(model, 'resample_flops') \
        else 0
    return {'conv': conv, 'resample': resample, 'total': conv + resample}
