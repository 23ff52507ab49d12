"""Feed plantkit's loaders to Keras `fit`: (images, labels) pairs, one epoch's loader at a time.

plantkit's loaders yield (images, labels, indices), which Keras would read as
(x, y, sample_weight), and their order depends on the epoch (for exact resumption).
`EpochBatches` drops the indices, builds the current epoch's loader when Keras starts an
epoch, and counts the images it delivers (for images/s). Keras gets it wrapped in a plain
torch DataLoader (`keras_input`), the input type it supports natively with the torch backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.utils.data import DataLoader, IterableDataset


class EpochBatches(IterableDataset):
    """Batches of the current epoch; `set_epoch` chooses which one the next iteration yields."""

    def __init__(
        self,
        loader_for_epoch: Callable[[int], Iterable],
        num_batches: int,
        *,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        self._loader_for_epoch = loader_for_epoch
        self.num_batches = int(num_batches)
        self.device = None if device is None else torch.device(device)
        self.epoch = 0
        self.images_seen = 0  # in the current epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self):
        self.images_seen = 0
        for images, labels, *_indices in self._loader_for_epoch(self.epoch):
            self.images_seen += len(labels)
            if self.device is not None and self.device.type != "cpu":
                # Pinned host memory (the loaders pin it) makes this copy asynchronous.
                images = images.to(self.device, non_blocking=True)
                labels = labels.to(self.device, non_blocking=True)
            yield images, labels


def keras_input(batches: EpochBatches) -> DataLoader:
    """A DataLoader that passes `batches` through unchanged (no re-batching, no workers)."""
    # Workers live in the inner loader; batch_size=None turns off collation here.
    return DataLoader(batches, batch_size=None, num_workers=0)
