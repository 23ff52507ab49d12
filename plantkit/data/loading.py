"""Batches of a dataset split for training and prediction: torch DataLoader, deterministic.

Order and augmentation depend only on (seed, epoch): the sampler, in the main process,
pairs every row of the epoch with a seed for its random transforms, and the worker that
draws the row seeds torch's RNG with it. So the batches are the same with any number of
workers, with persistent workers, and in a run resumed at that epoch.

A corrupt image is skipped, not fatal: the dataset returns a CorruptImage in its place,
the collate function drops it from the batch and passes it on, and the loader counts it
(in the main process, so the count is whole whatever the workers): in the CorruptImageTally
it was given, over every pass, and in one of its own per pass, which judges the 1 % limit
of the split (mid-pass, or at the end of the pass).

A training loader drops the final batch when it would hold a single image (`n % batch_size
== 1`; with several processes, a last global batch of fewer than two images a process):
BatchNorm cannot normalise one image in training mode. Shuffling picks another image to
leave out in each epoch; evaluation loaders keep every image.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence, Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from torch.utils.data import (
    DataLoader,
    Sampler,
    default_collate,
)
from torch.utils.data import Dataset as TorchDataset

from plantkit.choices import SAMPLERS
from plantkit.data.cache import DecodedCache
from plantkit.data.decode import open_image
from plantkit.data.layout import Dataset
from plantkit.data.loader_options import check_loader_options
from plantkit.data.sampling import draw_rows, sampler_at
from plantkit.data.transforms import (
    TransformSpec,
    eval_transform,
    seeded_cpu_rng,
    train_transform,
)
from plantkit.errors import PlantkitInputError

if TYPE_CHECKING:
    from torchvision.transforms import v2

MAX_CORRUPT_FRACTION = 0.01
MIN_SEEN_BEFORE_CHECK = 100  # below this, only the end of a pass is checked
MID_PASS_P = 1e-6
FILES_NAMED = 3


@dataclass(frozen=True)
class CorruptImage:
    """Stands in a batch for an image that did not decode."""

    row: int
    path: str
    error: str


class Batch(NamedTuple):
    """What the collate function hands from a worker to the loader."""

    images: torch.Tensor | None  # None when every image of the batch was corrupt
    labels: torch.Tensor | None
    rows: torch.Tensor | None
    corrupt: list[CorruptImage]


class CorruptImageTally:
    """Images read and corrupt images skipped, over every pass of the loaders that share it.

    Raises PlantkitInputError when more than `max_fraction` of the images read are corrupt:
    at the end of a pass, or mid-pass (after `min_seen` images) as soon as the count is
    too high to come from a fraction <= `max_fraction` (binomial tail < `mid_pass_p`).
    A plain mid-pass fraction would stop runs by mistake: shuffling bunches corrupt files,
    and two in the first 100 images of a set with 0.8 % is a one-in-five event.
    """

    def __init__(
        self,
        max_fraction: float = MAX_CORRUPT_FRACTION,
        min_seen: int = MIN_SEEN_BEFORE_CHECK,
        mid_pass_p: float = MID_PASS_P,
        *,
        verify_command: str = "plantkit data inspect --data ROOT --verify",
    ) -> None:
        self.max_fraction = max_fraction
        self.min_seen = min_seen
        self.mid_pass_p = mid_pass_p
        self.verify_command = verify_command  # named in the refusal: the next step
        self.seen = 0
        self.corrupt = 0
        self.errors: dict[str, str] = {}  # path -> decoder message, first occurrence

    def record(self, n_read: int, corrupt: Sequence[CorruptImage]) -> None:
        """Count `n_read` images read, `corrupt` among them."""
        self.seen += n_read
        self.corrupt += len(corrupt)
        for item in corrupt:
            self.errors.setdefault(item.path, item.error)

    def fresh(self, verify_command: str | None = None) -> CorruptImageTally:
        """An empty tally with the same limits."""
        return CorruptImageTally(self.max_fraction, self.min_seen, self.mid_pass_p,
                                 verify_command=verify_command or self.verify_command)

    def named_files(self) -> str:
        """The first corrupt files and their errors, 'and N more', for a message."""
        named = list(self.errors.items())[:FILES_NAMED]
        shown = "; ".join(f"{path} ({error})" for path, error in named)
        more = f" and {len(self.errors) - len(named)} more" if len(self.errors) > len(named) else ""
        return shown + more

    def check(self, *, end_of_pass: bool = False) -> None:
        """Raise if too many of the images read so far are corrupt."""
        if self.corrupt <= self.max_fraction * self.seen:
            return
        if not end_of_pass:
            if self.seen < self.min_seen:
                return
            from scipy.stats import binom  # only reached with corrupt files: import lazily

            if binom.sf(self.corrupt - 1, self.seen, self.max_fraction) > self.mid_pass_p:
                return
        raise PlantkitInputError(
            f"{self.corrupt} of {self.seen} images read are corrupt, more than "
            f"{self.max_fraction:.0%}: {self.named_files()}; list them all with "
            f"`{self.verify_command}`, then remove or replace them"
        )


def skipped_corrupt_line(when: str, passes: Sequence[tuple[str, CorruptImageTally]]
                         ) -> str | None:
    """The one warning line for the corrupt images skipped `when` ("epoch 2/5", "predicting
    val, test"): how many of each split's images, the first files, and the command that lists
    them all; None when `passes` ((split, tally of its pass) pairs) skipped none. Training
    and prediction both announce skipped images with it."""
    passes = [(split, tally) for split, tally in passes if tally.corrupt]
    if not passes:
        return None
    total = sum(tally.corrupt for _, tally in passes)
    counts = ", ".join(f"{tally.corrupt} of {tally.seen} {split}" for split, tally in passes)
    files = "; ".join(tally.named_files() for _, tally in passes)
    command = passes[0][1].verify_command
    return (f"warning: {when} skipped {total} corrupt image{'s' if total != 1 else ''} "
            f"({counts} images): {files}; list them all with `{command}`, then remove or "
            "replace them")


def verify_command(dataset: Dataset) -> str:
    """The `plantkit data inspect ... --verify` command line that lists `dataset`'s corrupt
    images (with the --val-from-train that carved its val split, if any)."""
    import shlex

    carve = ""
    if dataset.val_from_train is not None:
        carve = f" --val-from-train {dataset.val_from_train:g} --val-seed {dataset.val_seed}"
    return f"plantkit data inspect --data {shlex.quote(str(dataset.root))}{carve} --verify"


class EpochSampler(Sampler):
    """Yields (row, draw seed) for one epoch; order and seeds are fixed by (seed, epoch).

    `order` is a --sampler (plantkit.data.sampling: "none" is a permutation), run as
    `sampler_at(order, epoch, defer_epoch)`; `epochs` is the run's length (the progressive
    sampler's schedule). The epoch's
    order is cut into global batches of `batch_size` x `world` rows; the process of `rank`
    reads its block of `batch_size` rows of each (the last, shorter global batch is shared
    out evenly), so `world` processes together read exactly the order of one process with a
    batch `world` times larger. A last global batch of fewer than 2 x `world` rows is left
    out: BatchNorm cannot normalise a single image, and every process must take as many
    steps (for one process: the final batch of one image is dropped).
    """

    def __init__(self, labels: np.ndarray, *, order: str, seed: int, epoch: int,
                 batch_size: int = 1, rank: int = 0, world: int = 1, epochs: int = 1,
                 defer_epoch: int | None = None) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in a world of {world} processes")
        if order not in SAMPLERS:
            raise ValueError(f"unknown sampler {order!r}: use {', '.join(SAMPLERS)}")
        self.labels = np.asarray(labels, dtype=np.int64)
        self.order = order
        self.epochs, self.defer_epoch = int(epochs), defer_epoch
        self.seed = seed
        self.epoch = epoch
        self.batch_size, self.rank, self.world = int(batch_size), int(rank), int(world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _positions(self) -> np.ndarray:
        """This process's positions in the epoch's order."""
        n, global_batch = len(self.labels), self.batch_size * self.world
        full, last = divmod(n, global_batch)
        starts = np.arange(full) * global_batch + self.rank * self.batch_size
        blocks = [(starts[:, None] + np.arange(self.batch_size)).reshape(-1)]
        if last >= 2 * self.world:
            share = np.linspace(0, last, self.world + 1).astype(np.int64)  # even shares
            blocks.append(full * global_batch + np.arange(share[self.rank], share[self.rank + 1]))
        return np.concatenate(blocks)

    def __len__(self) -> int:
        return len(self._positions())

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order_entropy, draw_entropy = np.random.SeedSequence([self.seed, self.epoch]).spawn(2)
        generator = torch.Generator().manual_seed(
            int(order_entropy.generate_state(1, np.uint64)[0])
        )
        order = draw_rows(self.labels, sampler_at(self.order, self.epoch, self.defer_epoch),
                          generator, epoch=self.epoch, epochs=self.epochs)
        draw_seeds = draw_entropy.generate_state(len(self.labels), np.uint32).tolist()
        return iter([(order[i], draw_seeds[i]) for i in self._positions().tolist()])


class ImageDataset(TorchDataset):
    """One split's images as (float32 3 x crop x crop, label, row), or a CorruptImage.

    Indexed by row, or by (row, draw seed) to fix the random transforms. With
    `augment_below`, classes with fewer TRAIN images than that get rare_augmentation()
    before the standard transform (training only). With `cache` (a DecodedCache at the
    spec's resize) images are read from it instead of their files. `normalize=False` leaves
    crops as uint8 (normalised later, on the GPU: plantkit.data.transforms.normalize_uint8).
    """

    def __init__(
        self,
        dataset: Dataset,
        split: str,
        *,
        spec: TransformSpec,
        train: bool,
        augment_below: int | None = None,
        draft: bool = True,
        cache: DecodedCache | None = None,
        normalize: bool = True,
    ) -> None:
        self.images_dir = dataset.images_dir
        # Fixed-width bytes, not a list of str: forked workers that touch Python objects
        # copy their pages (reference counts), a numpy buffer stays shared.
        self.paths = np.array([p.encode() for p in dataset.splits[split].paths])
        self.labels = dataset.splits[split].labels.astype(np.int64)
        self.min_side = spec.resize if draft else None
        if cache is not None and cache.resize != spec.resize:
            raise PlantkitInputError(f"the image cache at {cache.folder} holds images resized "
                                     f"to {cache.resize}, not {spec.resize}")
        self.cache = cache
        self.cache_entries = None if cache is None else cache.entries_of(
            dataset.splits[split].paths)
        self.transform = (train_transform(spec, normalize=normalize) if train
                          else eval_transform(spec, normalize=normalize))
        self.augmented_classes: frozenset[int] = frozenset()
        self.rare_transform: v2.Compose | None = None
        if train and augment_below is not None:
            train_counts = np.bincount(dataset.splits["train"].labels,
                                       minlength=dataset.num_classes)
            self.augmented_classes = frozenset(
                np.flatnonzero(train_counts < augment_below).tolist())
            self.rare_transform = train_transform(spec, rare=True, normalize=normalize)

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, row: int) -> str:
        return str(self.images_dir / self.paths[row].decode())

    def __getitem__(self, key: int | tuple[int, int]):
        row, draw_seed = key if isinstance(key, tuple) else (key, None)
        label = int(self.labels[row])
        try:
            if self.cache_entries is not None:
                image = self.cache.image(int(self.cache_entries[row]))  # type: ignore[union-attr]
            else:
                image = open_image(self.path(row), min_side=self.min_side)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means a corrupt file
            return CorruptImage(row, self.path(row), f"{type(exc).__name__}: {exc}")
        transform = self.transform
        if self.rare_transform is not None and label in self.augmented_classes:
            transform = self.rare_transform  # augmented_classes is empty without it
        if draw_seed is None:
            return transform(image), label, row
        # Restored afterwards: with workers=0 this runs in the training process.
        with seeded_cpu_rng(draw_seed):
            return transform(image), label, row


def collate_skipping_corrupt(samples: list) -> Batch:
    """Stack the decoded samples; pass the corrupt ones on for counting."""
    corrupt = [s for s in samples if isinstance(s, CorruptImage)]
    good = [s for s in samples if not isinstance(s, CorruptImage)]
    if not good:
        return Batch(None, None, None, corrupt)
    images, labels, rows = default_collate(good)
    return Batch(images, labels, rows, corrupt)


class ImageLoader:
    """Iterates (images float32 N x 3 x crop x crop, labels int64 N, rows int64 N) batches.

    Each pass is one epoch and advances the epoch by one, so a loader made for epoch e
    gives epochs e, e+1, ... (keeping persistent workers); set_epoch() picks any.
    `rows` index the split's row order. `tally` counts over every pass; `last_pass` is the
    tally of the latest (or current) pass alone, which judges the corrupt-image limit of the
    split, and `epoch_corrupt` its corrupt images.
    """

    def __init__(self, loader: DataLoader, tally: CorruptImageTally, epoch: int,
                 split: str = "", verify_command: str | None = None) -> None:
        if not isinstance(loader.dataset, ImageDataset):
            raise TypeError(f"ImageLoader needs a loader of an ImageDataset, got "
                            f"{type(loader.dataset).__name__}")
        self.loader = loader
        self.dataset: ImageDataset = loader.dataset
        self.tally = tally
        self.split = split
        self.epoch = epoch
        self.last_pass = tally.fresh(verify_command)
        self.epoch_corrupt = 0

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def num_images(self) -> int:
        """Images drawn per pass by this process (corrupt ones included; a final one that
        the sampler leaves out not)."""
        sampler = self.loader.sampler
        if not isinstance(sampler, Sized):  # make_loader's samplers all have a length
            raise TypeError(f"the loader's sampler {type(sampler).__name__} has no length")
        return len(sampler)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        sampler = self.loader.sampler
        if isinstance(sampler, EpochSampler):
            sampler.set_epoch(self.epoch)
        self.epoch += 1
        self.epoch_corrupt = 0
        # A pass left unfinished (a peek at the first batch) counts for nothing: each pass
        # is judged on its own, so every epoch's images are checked whole.
        self.last_pass = this_pass = self.last_pass.fresh()
        for batch in self.loader:
            n_good = 0 if batch.images is None else len(batch.images)
            self.tally.record(n_good + len(batch.corrupt), batch.corrupt)
            this_pass.record(n_good + len(batch.corrupt), batch.corrupt)
            self.epoch_corrupt += len(batch.corrupt)
            this_pass.check()
            if n_good:
                yield batch.images, batch.labels, batch.rows
        this_pass.check(end_of_pass=True)


def make_loader(
    dataset: Dataset,
    split: str,
    *,
    spec: TransformSpec,
    train: bool,
    batch_size: int = 32,
    workers: int = 2,
    sampler: str = "none",
    augment_below: int | None = None,
    seed: int = 0,
    epoch: int = 0,
    tally: CorruptImageTally | None = None,
    draft: bool = True,
    cache: DecodedCache | None = None,
    normalize: bool = True,
    rank: int = 0,
    world: int = 1,
    epochs: int = 1,
    defer_epoch: int | None = None,
) -> ImageLoader:
    """A loader over `split`: drawn by `sampler` (plantkit.data.sampling; "none": shuffled) when
    `train`, else in row order. `epochs` and `defer_epoch`: the run's, for the sampler.

    `train` also selects the random crop and, with `augment_below`, the rare-species
    augmentation, and drops a final batch of one image. `draft`: decode JPEGs at reduced
    scale (see decode.open_image). `tally` (default: a new one) counts the corrupt images of
    every pass; more than 1 % of a pass's images stops it (PlantkitInputError). `cache`: read
    the images from this decoded image cache (plantkit.data.cache.find_cache). `normalize`
    False: uint8 crops, to normalise on the device (transforms.normalize_uint8). `rank` of
    `world` training processes: this process's share of each global batch (EpochSampler).
    """
    _check_options(dataset, split, train, batch_size, workers, sampler, augment_below, seed, epoch)
    if train and len(dataset.splits[split]) < 2:
        raise PlantkitInputError(
            f"split {split!r} of {dataset.root} has 1 image: training needs at least 2 "
            "(BatchNorm normalises over a batch)"
        )
    image_dataset = ImageDataset(
        dataset, split, spec=spec, train=train, augment_below=augment_below, draft=draft,
        cache=cache, normalize=normalize,
    )
    if train:
        # The sampler leaves out a last batch of one image (BatchNorm in train mode fails on
        # it), and only that: every other batch keeps the recipe's "every image every epoch".
        row_sampler = EpochSampler(image_dataset.labels, order=sampler, seed=seed, epoch=epoch,
                                   batch_size=batch_size, rank=rank, world=world,
                                   epochs=epochs, defer_epoch=defer_epoch)
    else:
        row_sampler = None  # sequential: the split's row order
    loader = DataLoader(
        image_dataset,
        batch_size=batch_size,
        sampler=row_sampler,
        num_workers=workers,
        collate_fn=collate_skipping_corrupt,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
        # Only the workers' own base seeds come from here; transforms use the draw seeds.
        generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch),
    )
    return ImageLoader(loader, tally if tally is not None else CorruptImageTally(), epoch,
                       split=split, verify_command=verify_command(dataset))


def _check_options(
    dataset: Dataset,
    split: str,
    train: bool,
    batch_size: int,
    workers: int,
    sampler: str,
    augment_below: int | None,
    seed: int,
    epoch: int,
) -> None:
    if split not in dataset.splits:
        raise PlantkitInputError(
            f"unknown split {split!r}: {dataset.root} has {', '.join(dataset.splits)}"
        )
    if len(dataset.splits[split]) == 0:
        raise PlantkitInputError(f"split {split!r} of {dataset.root} has no images")
    check_loader_options(batch_size, workers)
    if sampler not in SAMPLERS:
        raise PlantkitInputError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if sampler != "none" and not train:
        raise PlantkitInputError(
            f"--sampler {sampler} applies to training; evaluation reads rows in order"
        )
    if augment_below is not None and augment_below < 1:
        raise PlantkitInputError(f"--augment-below must be at least 1, got {augment_below}")
    if seed < 0 or epoch < 0:
        raise PlantkitInputError(f"--seed and the epoch must be 0 or more, got {seed} and {epoch}")
