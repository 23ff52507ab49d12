"""Size and cost of a network: parameters, and FLOPs per image at a given input size."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode


def count_params(module: torch.nn.Module) -> int:
    """Number of parameters (trainable or not; buffers such as BatchNorm statistics excluded)."""
    return sum(p.numel() for p in module.parameters())


def count_gflops(module: torch.nn.Module, input_size: int, *, channels: int = 3) -> float:
    """FLOPs / 1e9 of one eval-mode forward pass of one image `input_size` pixels square.

    Counted by torch's FlopCounterMode: a multiply-add is 2 FLOPs (so about twice the
    "GMACs" many papers quote), and only matrix products, convolutions and attention count.
    The pass runs on the meta device (shapes only, no arithmetic), falling back to a real
    pass for a module that cannot; on CPU the meta pass is also the one that sees
    attention, which CPU's fused attention kernel hides from the counter.
    """
    with eval_mode(module), torch.no_grad():
        try:
            return _count_flops(module, input_size, channels, meta=True) / 1e9
        except (RuntimeError, NotImplementedError):
            return _count_flops(module, input_size, channels, meta=False) / 1e9


def _count_flops(module: torch.nn.Module, input_size: int, channels: int, *, meta: bool) -> int:
    counter = FlopCounterMode(display=False)
    if meta:
        tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
        shadow = {name: torch.empty_like(t, device="meta") for name, t in tensors.items()}
        image = torch.zeros(1, channels, input_size, input_size, device="meta")
        with counter:
            functional_call(module, shadow, (image,))
    else:
        device = next(module.parameters()).device
        with counter:
            module(torch.zeros(1, channels, input_size, input_size, device=device))
    return counter.get_total_flops()


@contextlib.contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put every submodule in eval mode, then restore each one's own mode."""
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes.items():
            m.training = training
