"""Feed plantkit's loaders to Keras `fit`: (images, labels) pairs, one epoch's loader at a time.

plantkit's loaders yield (images, labels, indices), which Keras would read as
(x, y, sample_weight), and their order depends on the epoch (for exact resumption).
`EpochBatches` drops the indices, builds the current epoch's loader when Keras starts an
epoch, and counts the images it delivers (for images/s). Keras gets it wrapped in a plain
torch DataLoader (`keras_input`), the input type it supports natively with the torch backend.

Keras stops asking after `len()` batches, so a generator that simply yielded them would
never run to its end, and the loader's end-of-pass checks (the corrupt-image limit) would
never run. `EpochBatches` reads one batch ahead instead: the last batch is handed over only
once the loader's pass has ended. Reading ahead changes no batch (their content depends on
the seed and the epoch only) and no random state (the loaders restore torch's).
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
        min_batch: int = 1,
        exact: bool = False,
        mix=None,
    ):
        super().__init__()
        self._loader_for_epoch = loader_for_epoch
        self.num_batches = int(num_batches)
        self.device = None if device is None else torch.device(device)
        # Training passes 2: a batch that skipped corrupt images down to one image would
        # fail in BatchNorm, so such a batch is left out (the loaders drop a final one).
        self.min_batch = int(min_batch)
        # Data-parallel training: every process must take num_batches steps (each step is a
        # collective), so a batch lost to corrupt images is made up by repeating the last.
        self.exact = bool(exact)
        # --mixup / --cutmix (plantkit.training.mixing.BatchMixer): applied on the device,
        # after the copy, in this process (its random draws follow the seed and the epoch).
        self.mix = mix
        self.epoch = 0
        self.images_seen = 0  # in the current epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self):
        self.images_seen = 0
        if self.mix is not None:
            self.mix.start_epoch(self.epoch)
        ahead, delivered = None, 0
        for images, labels, *_indices in self._loader_for_epoch(self.epoch):
            if len(labels) < self.min_batch:
                continue
            if ahead is not None:
                yield self._deliver(*ahead)
                delivered += 1
            ahead = images, labels
        if ahead is None:
            return
        # The pass is over: its end-of-pass checks have run.
        yield self._deliver(*ahead)
        delivered += 1
        while self.exact and delivered < self.num_batches:
            yield self._deliver(*ahead)
            delivered += 1

    def _deliver(self, images, labels):
        self.images_seen += len(labels)
        if self.device is not None and self.device.type != "cpu":
            # Pinned host memory (the loaders pin it) makes this copy asynchronous.
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
        if self.mix is not None:
            return self.mix(images, labels)
        return images, labels


def keras_input(batches: EpochBatches) -> DataLoader:
    """A DataLoader that passes `batches` through unchanged (no re-batching, no workers)."""
    # Workers live in the inner loader; batch_size=None turns off collation here.
    return DataLoader(batches, batch_size=None, num_workers=0)
