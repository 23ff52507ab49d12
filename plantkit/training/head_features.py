"""cRT on stored features: `plantkit train --init-from EXPERT --retrain-head` without images.

The classifier of a frozen backbone sees only the backbone's penultimate features, so when
the --init-from expert's store holds them for the whole train split (`plantkit predict
--split train --features`), each epoch is a pass of the classifier over those rows instead
of a pass of the whole network over the images: no decoding, no augmentation, no backbone.
The features are the eval-mode ones of the un-augmented images (the store keeps float16),
which is what Kang et al.'s cRT retrains on when features are precomputed; options that
need images (--augment-below, --mixup, --cutmix) keep the images path.

The samplers, the deferred schedule, the data-parallel shares and the resumable epoch order
are EpochSampler's, as for images; the expert itself trains (Expert.call takes feature rows
when its backbone is frozen), so checkpoints, --resume and the final predictions (val and
test, from images) are the ordinary ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from plantkit.artifacts import STORE_FILE
from plantkit.data.loading import CorruptImageTally, EpochSampler

# TrainConfig fields that change what the images look like: with any set, the images path.
NEEDS_IMAGES = ("augment_below", "mixup", "cutmix")


def images_needed_by(config) -> list[str]:
    """The options of `config` that need the images (a feature pass cannot honour them)."""
    return [key for key in NEEDS_IMAGES if getattr(config, key)]


def stored_train_features(init_dir: str | Path | None, dataset) -> np.ndarray | None:
    """The --init-from expert's stored train features (N x D float32, the dataset's train
    row order), or None unless its store holds them for every train image of `dataset`."""
    from plantkit.store import open_store

    if init_dir is None or not (Path(init_dir) / STORE_FILE).is_file():
        return None
    train = dataset.splits["train"]
    with open_store(Path(init_dir) / STORE_FILE) as store:
        if (store.fingerprint != dataset.fingerprint or "train" not in store.splits
                or not store.has_features("train") or store.paths("train") != train.paths
                or not np.array_equal(store.labels("train"), train.labels)):
            return None
        return np.asarray(store.features("train"), dtype=np.float32)


class FeatureLoader:
    """The train loader's interface (plantkit.data.loading.ImageLoader) over feature rows:
    (features N x D float32, labels int64 N, rows int64 N) batches, one epoch a pass."""

    split = "train"

    def __init__(self, features: np.ndarray, labels: np.ndarray, *, batch_size: int,
                 sampler: str, seed: int, epoch: int, rank: int = 0, world: int = 1,
                 epochs: int = 1, defer_epoch: int | None = None) -> None:
        self.features = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.batch_size = int(batch_size)
        self.sampler = EpochSampler(np.asarray(labels), order=sampler, seed=seed, epoch=epoch,
                                    batch_size=batch_size, rank=rank, world=world,
                                    epochs=epochs, defer_epoch=defer_epoch)
        self.epoch = epoch
        self.last_pass = CorruptImageTally()  # no image is read: none is ever corrupt
        self.epoch_corrupt = 0

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    @property
    def num_images(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        self.sampler.set_epoch(self.epoch)
        self.epoch += 1
        rows = torch.tensor([row for row, _seed in self.sampler], dtype=torch.int64)
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start:start + self.batch_size]
            yield self.features[batch], self.labels[batch], batch
