"""SGD exactly as torch.optim.SGD computes it, as a Keras optimizer.

Keras's SGD differs from torch's in two ways that change results: its `weight_decay`
is decoupled (weights shrink by lr * wd, outside the momentum), and its velocity
accumulates `-lr * g`, so a learning-rate drop only takes effect gradually. The
Pl@ntNet-300K recipe was tuned with torch's rule, implemented here:

    g   = grad + weight_decay * w          (coupled L2, every trainable variable)
    buf = momentum * buf + g
    d   = g + momentum * buf  if nesterov  else  buf
    w   = w - lr * d

`buf` starts at zero, which equals torch's first-step `buf = g` (no dampening).

With several training processes (plantkit.training.distributed), `grad` is first averaged
over them: the step of the global batch, the same in every process.
"""

from __future__ import annotations

import torch

from plantkit.backend import keras
from plantkit.training import distributed

ops = keras.ops


@keras.saving.register_keras_serializable(package="plantkit")
class TorchSGD(keras.optimizers.Optimizer):
    """torch.optim.SGD (momentum, Nesterov, coupled L2 weight decay, no dampening) for Keras."""

    def __init__(
        self,
        learning_rate=0.01,
        momentum: float = 0.9,
        nesterov: bool = True,
        l2_weight_decay: float = 1e-4,
        name: str = "torch_sgd",
        **kwargs,
    ):
        # Keras's own `weight_decay` argument is the decoupled kind; refuse it so that
        # nobody gets both by accident.
        if kwargs.get("weight_decay") is not None:
            raise ValueError("TorchSGD applies coupled L2 decay: pass l2_weight_decay, "
                             "not weight_decay")
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0.0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        if l2_weight_decay < 0.0:
            raise ValueError(f"l2_weight_decay must be >= 0, got {l2_weight_decay}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.l2_weight_decay = float(l2_weight_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = (
            self.add_optimizer_variables(variables, "momentum") if self.momentum else []
        )

    def update_step(self, gradient, variable, learning_rate):
        """One variable's update with backend-neutral ops (the torch path is batched below)."""
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.l2_weight_decay:
            gradient = ops.add(gradient, ops.multiply(variable, self.l2_weight_decay))
        if self.momentum:
            buf = self.momentums[self._get_variable_index(variable)]
            self.assign(buf, ops.add(ops.multiply(buf, self.momentum), gradient))
            if self.nesterov:
                gradient = ops.add(gradient, ops.multiply(buf, self.momentum))
            else:
                gradient = buf
        self.assign_sub(variable, ops.multiply(gradient, learning_rate))

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if keras.backend.backend() != "torch":
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        _torch_sgd_step(self, grads, trainable_variables, float(learning_rate))

    def get_config(self):
        config = super().get_config()
        config.update(
            momentum=self.momentum,
            nesterov=self.nesterov,
            l2_weight_decay=self.l2_weight_decay,
        )
        return config


def _torch_sgd_step(optimizer: TorchSGD, grads, variables, learning_rate: float) -> None:
    """The update over all variables at once with torch's multi-tensor ops.

    The gradient tensors are updated in place (they are discarded after the step): a fresh
    copy of every gradient, twice per step, cost more than the arithmetic on CPU.
    """
    with torch.no_grad():
        params = [v.value for v in variables]
        grads = [g.to(p.dtype) for g, p in zip(grads, params, strict=True)]
        if distributed.active():  # data-parallel: every process applies the global mean
            distributed.average_gradients(grads)
        if optimizer.l2_weight_decay:
            torch._foreach_add_(grads, params, alpha=optimizer.l2_weight_decay)
        if optimizer.momentum:
            bufs = [optimizer.momentums[optimizer._get_variable_index(v)].value
                    for v in variables]
            torch._foreach_mul_(bufs, optimizer.momentum)
            torch._foreach_add_(bufs, grads)
            if optimizer.nesterov:
                torch._foreach_add_(grads, bufs, alpha=optimizer.momentum)
            else:
                grads = bufs
        torch._foreach_add_(params, grads, alpha=-learning_rate)
