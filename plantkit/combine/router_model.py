"""The router's gating network: a one-hidden-layer Keras MLP, its loss, and one fold's fit.

The network maps preprocessed (standardised, PCA-reduced) inputs to gate logits over M
experts; the weights are their softmax. Training needs only log p_m(y_i | x_i), the
true-class log-probability of every expert on every image (N x M), because the mixture's
NLL is
-log sum_m w_m(x_i) p_m(y_i | x_i) = -logsumexp_m(log w_m(x_i) + log p_m(y_i | x_i)).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from scipy.special import softmax
from threadpoolctl import threadpool_limits

from plantkit.backend import keras

ops = keras.ops

# Monitored on the inner validation rows for early stopping: the mixture's NLL alone, so
# that a larger --balance cannot make a worse router look better.
EARLY_STOPPING_MONITOR = "val_mixture_nll"


def mixture_nll(log_true_probs, gate_logits):
    """Per-image NLL of the mixture on the true class (log-space, so tiny p_m stay exact)."""
    log_weights = ops.log_softmax(gate_logits, axis=-1)
    return -ops.logsumexp(log_weights + log_true_probs, axis=-1)


class RouterLoss(keras.losses.Loss):
    """Mixture NLL plus `balance` times the Switch Transformer load-balancing loss.

    The balancing loss of a batch is M * sum_m f_m * P_m (Fedus et al. 2021), f_m the fraction
    of images whose largest weight is expert m (no gradient: argmax), P_m the mean weight of
    m. It is spread over the images as M * sum_m f_m * w_m(x_i), whose batch mean is exactly
    that term, so Keras's per-image mean reduction adds it once.
    """

    def __init__(self, balance: float = 0.0, name: str = "router_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.balance = float(balance)

    def call(self, log_true_probs, gate_logits):
        nll = mixture_nll(log_true_probs, gate_logits)
        if self.balance == 0.0:
            return nll
        weights = ops.softmax(gate_logits, axis=-1)
        num_experts = ops.shape(weights)[-1]
        routed = ops.one_hot(ops.argmax(weights, axis=-1), num_experts, dtype=weights.dtype)
        fraction_routed = ops.stop_gradient(ops.mean(routed, axis=0))
        return nll + self.balance * num_experts * ops.sum(weights * fraction_routed, axis=-1)


def build_gate(input_dim: int, num_experts: int, hidden: int, dropout: float) -> keras.Model:
    """Inputs -> Dense(hidden, relu) -> Dropout -> Dense(num_experts) gate logits.

    The output layer starts at zero, so an untrained router is the plain average (uniform
    weights) and training moves away from it only as far as the inner validation rows allow.
    """
    inputs = keras.Input((input_dim,), name="router_inputs")
    hidden_units = keras.layers.Dense(hidden, activation="relu", name="hidden")(inputs)
    hidden_units = keras.layers.Dropout(dropout, name="dropout")(hidden_units)
    gate_logits = keras.layers.Dense(num_experts, kernel_initializer="zeros",
                                     name="gate_logits")(hidden_units)
    return keras.Model(inputs, gate_logits, name="router")


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch and the BLAS/OpenMP pools (NumPy, SciPy, scikit-learn) on one thread inside
    the block, then restore the previous counts.

    The router's matrices are small (2,048 x 128 batches, a 4,096-row PCA): extra threads
    cost more in synchronisation than they save. Measured on the 2-core dev machine with
    other work running: 5 epochs of a 22,000-row gate took 1.2 s on one torch thread and
    16 s on two; the PCA of one fold 0.3 s on one BLAS thread and 0.5 to 2.3 s on two.
    """
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(torch_threads)


def train_gate(train_inputs: np.ndarray, train_log_true: np.ndarray,
               stop_inputs: np.ndarray, stop_log_true: np.ndarray, *, hidden: int,
               dropout: float, weight_decay: float, learning_rate: float, balance: float,
               batch_size: int, max_epochs: int, patience: int, seed: int
               ) -> tuple[keras.Model, int]:
    """Fit one gate with AdamW, early-stopped on the `stop_*` rows' mixture NLL.

    Returns the model at its best epoch and that epoch (1-based). Seeds Python, NumPy and
    torch globally with `seed` (keras.utils.set_random_seed): initialisation, dropout and
    the batch order are then reproducible.
    """
    keras.utils.set_random_seed(seed)
    model = build_gate(train_inputs.shape[1], train_log_true.shape[1], hidden, dropout)
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=learning_rate,
                                         weight_decay=weight_decay),
        loss=RouterLoss(balance),
        metrics=[mixture_nll],
    )
    stopping = keras.callbacks.EarlyStopping(monitor=EARLY_STOPPING_MONITOR, mode="min",
                                             patience=patience, restore_best_weights=True)
    model.fit(train_inputs, train_log_true, validation_data=(stop_inputs, stop_log_true),
              batch_size=batch_size, epochs=max_epochs, shuffle=True, callbacks=[stopping],
              verbose=0)
    return model, stopping.best_epoch + 1


def gate_weights(model: keras.Model, inputs: np.ndarray) -> np.ndarray:
    """Softmax weights (N x M float32) of a gate on already preprocessed inputs."""
    gate_logits = np.asarray(model.predict_on_batch(inputs), dtype=np.float64)
    return softmax(gate_logits, axis=1).astype(np.float32)
