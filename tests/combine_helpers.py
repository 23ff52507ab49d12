"""Small expert stores for the combine tests: a long-tailed synthetic task, experts of
different quality and cost, written with StoreWriter."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from plantkit.artifacts import store_path
from plantkit.store import StoreWriter, open_store

NUM_CLASSES = 12
CLASS_IDS = [f"c{i:02d}" for i in range(NUM_CLASSES)]
FINGERPRINT = "synthetic0123abcd"
# Long-tailed train counts: many (>100), medium (20-100) and few (<20) classes.
TRAIN_COUNTS = np.array([400, 250, 150, 90, 60, 40, 25, 18, 12, 8, 5, 3])


@dataclass(frozen=True)
class ExpertSpec:
    """An expert: how strongly its logits point at the true class, how over/under-confident
    it is (scale), how much it favours frequent classes, and its cost."""

    name: str
    strength: float
    scale: float = 1.0
    prior_bias: float = 0.5
    gflops: float | None = 1.0
    features: bool = False


DEFAULT_SPECS = (
    ExpertSpec("tiny", strength=1.6, scale=2.5, gflops=0.5, features=True),
    ExpertSpec("small", strength=2.2, scale=0.6, gflops=1.5),
    ExpertSpec("medium", strength=2.8, scale=1.8, gflops=4.0),
    ExpertSpec("large", strength=3.2, scale=1.0, gflops=9.0),
)


def split_labels(seed: int, n_val: int, n_test: int) -> dict[str, np.ndarray]:
    """Labels drawn from a flattened train prior, sorted (stores list rows by path, by class)."""
    rng = np.random.default_rng(seed)
    prior = np.sqrt(TRAIN_COUNTS) / np.sqrt(TRAIN_COUNTS).sum()
    return {split: np.sort(rng.choice(NUM_CLASSES, size=n, p=prior))
            for split, n in (("val", n_val), ("test", n_test))}


def expert_logits(spec: ExpertSpec, labels: np.ndarray, rng) -> np.ndarray:
    noise = rng.normal(size=(len(labels), NUM_CLASSES))
    signal = np.zeros_like(noise)
    signal[np.arange(len(labels)), labels] = spec.strength
    log_prior = np.log(TRAIN_COUNTS / TRAIN_COUNTS.sum())
    return (spec.scale * (signal + noise + spec.prior_bias * log_prior)).astype(np.float32)


def write_expert(artifacts: Path, spec: ExpertSpec, labels: dict[str, np.ndarray], seed: int,
                 *, fingerprint: str = FINGERPRINT, splits=("val", "test"),
                 dtype: str = "float16", logits: dict | None = None) -> Path:
    """One expert store; its logits are drawn from (seed, name) unless given."""
    rng = np.random.default_rng([seed, *spec.name.encode()])
    attrs = {"architecture": f"synthetic-{spec.name}", "params": 1000}
    if spec.gflops is not None:
        attrs["gflops"] = spec.gflops
    path = store_path(artifacts, spec.name)
    with StoreWriter(path, name=spec.name, kind="expert", class_ids=CLASS_IDS,
                     fingerprint=fingerprint, attrs=attrs, train_counts=TRAIN_COUNTS) as writer:
        for split in ("val", "test"):
            y = labels[split]
            z = expert_logits(spec, y, rng) if logits is None else logits[split]
            if split not in splits:
                continue
            features = None
            if spec.features:
                # Router input: noisy one-hot of the true class's group (detectable subsets).
                features = np.eye(4)[y % 4] + 0.1 * rng.normal(size=(len(y), 4))
            part = writer.create_split(split, n_rows=len(y), dtype=dtype,
                                       feature_dim=4 if spec.features else None)
            paths = [f"{split}/{CLASS_IDS[c]}/img{i:04d}.jpg" for i, c in enumerate(y)]
            part.write(0, z, y, paths, features)
    return path


def make_experts(artifacts: Path, specs=DEFAULT_SPECS, *, seed: int = 0, n_val: int = 360,
                 n_test: int = 360, **kwargs) -> list[str]:
    """Write every spec's store under artifacts/experts/; returns the names."""
    labels = split_labels(seed, n_val, n_test)
    for spec in specs:
        write_expert(artifacts, spec, labels, seed, **kwargs)
    return [spec.name for spec in specs]


def rewrite_with_test_labels(source: Path, target: Path, permutation: np.ndarray) -> None:
    """Copy a store with its test labels permuted (logits, paths and val untouched)."""
    with open_store(source) as store:
        with StoreWriter(target, name=store.name, kind=store.kind, class_ids=store.class_ids,
                         fingerprint=store.fingerprint, attrs=store.attrs,
                         train_counts=store.train_counts) as writer:
            for split in store.splits:
                labels = store.labels(split)
                if split == "test":
                    labels = labels[permutation]
                features = store.features(split) if store.has_features(split) else None
                part = writer.create_split(split, n_rows=store.num_rows(split),
                                           dtype=store.logits_dtype(split),
                                           feature_dim=store.feature_dim(split))
                part.write(0, store.logits(split), labels, store.paths(split), features)


def write_linear_expert(artifacts: Path, name: str, labels: dict[str, np.ndarray],
                        features: dict[str, np.ndarray], weight, bias=None, *,
                        class_ids=("x", "y", "z"), fingerprint: str = "tiny",
                        gflops: float = 1.0, classifier: bool = True) -> Path:
    """An expert store whose logits are features @ weight.T + bias, with its features (float16,
    as prediction stores them) and, unless `classifier` is False, the classifier."""
    from plantkit.store import Classifier

    weight = np.asarray(weight, dtype=np.float32)
    bias = np.zeros(len(weight), np.float32) if bias is None else np.asarray(bias, np.float32)
    path = store_path(artifacts, name)
    with StoreWriter(path, name=name, kind="expert", class_ids=list(class_ids),
                     fingerprint=fingerprint, attrs={"gflops": gflops},
                     train_counts=np.arange(len(class_ids), 0, -1) * 10) as writer:
        for split, y in labels.items():
            f = np.asarray(features[split], dtype=np.float32)
            part = writer.create_split(split, n_rows=len(y), feature_dim=f.shape[1])
            paths = [f"{split}/{class_ids[c]}/img{i:04d}.jpg" for i, c in enumerate(y)]
            part.write(0, f @ weight.T + bias, y, paths, f)
        if classifier:
            writer.set_classifier(Classifier(weight, bias, "fc"))
    return path
