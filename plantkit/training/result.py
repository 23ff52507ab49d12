"""What a finished training returns: `TrainResult`, the run in a few numbers.

Each stored split's top-1 is plantkit.metrics' (its tie rule: the same value `plantkit
report` and `plantkit combine` print); `plantkit train` prints and serialises this object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from plantkit import metrics
from plantkit.artifacts import CHECKPOINTS_DIR, STORE_FILE
from plantkit.store import open_store
from plantkit.training import resume


@dataclass(frozen=True)
class TrainResult:
    """A finished expert: its name and folder, the best epoch (0-based) and its val top-1
    (the one training selected it by), and the top-1 of each split of its predictions.h5."""

    expert: str
    folder: Path
    best_epoch: int
    val_top1: float
    split_top1: dict[str, float] = field(default_factory=dict)  # by split, in store order

    @classmethod
    def of_run(cls, run_dir: str | Path) -> TrainResult:
        """The result of the finished run in `run_dir` (its resume point and its store)."""
        run_dir = Path(run_dir)
        state = resume.read_state(run_dir / CHECKPOINTS_DIR)
        if state is None:
            raise FileNotFoundError(f"{run_dir} holds no finished training")
        split_top1 = {}
        with open_store(run_dir / STORE_FILE) as store:
            for split in store.splits:
                top1 = metrics.split_accuracy(store, split)["top1"]
                split_top1[split] = top1 if top1 == top1 else 0.0  # NaN: an empty split
        return cls(expert=run_dir.name, folder=run_dir, best_epoch=int(state["best_epoch"]),
                   val_top1=float(state["best_value"]), split_top1=split_top1)

    def to_dict(self) -> dict:
        """Plain JSON values: expert, folder, best_epoch, val_top1, then <split>_top1 each
        (`plantkit train --json`). A stored val split's top-1 (plantkit.metrics' tie rule)
        is the val_top1 shown, in place of the value training measured."""
        return metrics.to_plain({
            "expert": self.expert,
            "folder": str(self.folder),
            "best_epoch": self.best_epoch,
            "val_top1": self.val_top1,
            **{f"{split}_top1": top1 for split, top1 in self.split_top1.items()},
        })
