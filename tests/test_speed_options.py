"""The options of the fast path, run on the CPU: bfloat16 autocast (--amp), torch.compile
(--compile), --lr-scale linear, uint8 batches normalised by the expert (what the loaders hand
a GPU), and the decoded image cache used automatically by train and predict (--no-cache)."""

from __future__ import annotations

import json

import pytest
import torch
from cli_helpers import cli, one_torch_thread  # noqa: F401 (an autouse fixture)

from plantkit.artifacts import read_history_rows
from plantkit.backend import keras
from plantkit.data.cache import USING_CACHE_LINE, build_cache
from plantkit.data.layout import open_dataset
from plantkit.data.profiles import make_profile
from plantkit.data.synth import generate_dataset
from plantkit.data.transforms import ToNormalizedFloat
from plantkit.device_pool import run_one_per_device
from plantkit.models.expert import create_expert, load_expert
from plantkit.training.config import TrainConfig, effective_lr
from plantkit.training.fit import train_expert

CLASSES = 4
TINY = dict(arch="test_resnet", resize=40, crop=32, batch_size=16, workers=0, epochs=1)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "four"
    return generate_dataset(root, make_profile("uniform", classes=CLASSES, scale=0.005),
                            image_size=48, seed=2)


class RecordDtypes(keras.callbacks.Callback):
    """The dtype of the first convolution's output in training steps, and the backbone's
    compiled state, as `fit` runs."""

    def __init__(self):
        super().__init__()
        self.dtypes: set[torch.dtype] = set()
        self.compiled: bool | None = None

    def on_train_begin(self, logs=None):
        backbone = self.model.backbone
        self.compiled = backbone._compiled_call_impl is not None
        first_conv = next(m for m in backbone.modules() if isinstance(m, torch.nn.Conv2d))
        if not self.compiled:  # a hook would only break the compiled graph
            first_conv.register_forward_hook(
                lambda _m, _i, out: self.dtypes.add(out.dtype) if _m.training else None)


def test_amp_trains_under_cpu_bfloat16_autocast_with_the_linearly_scaled_rate(data_root,
                                                                              tmp_path):
    record = RecordDtypes()
    config = TrainConfig(data=str(data_root), amp=True, lr_scale="linear", **TINY)
    result = train_expert(config, artifacts=tmp_path, quiet=True, callbacks=[record])
    assert record.dtypes == {torch.bfloat16}
    rows = read_history_rows(result.folder / "history.csv")
    # --lr 0.01 at a global batch of 16: x 16/32.
    assert float(rows[0]["lr"]) == pytest.approx(0.005, rel=1e-6)
    assert effective_lr(config) == pytest.approx(0.005)
    assert 0.0 < float(rows[0]["loss"]) < 10.0
    assert load_expert(result.folder).config["amp"] is True


def test_compile_trains_the_compiled_backbone_and_saves_plain_weights(data_root, tmp_path):
    record = RecordDtypes()
    plain = train_expert(TrainConfig(data=str(data_root), name="plain", **TINY),
                         artifacts=tmp_path, quiet=True)
    compiled = train_expert(TrainConfig(data=str(data_root), name="compiled", compile=True,
                                        **TINY), artifacts=tmp_path, quiet=True,
                            callbacks=[record])
    assert record.compiled is True
    a = torch.load(plain.folder / "weights.pt", weights_only=True)
    b = torch.load(compiled.folder / "weights.pt", weights_only=True)
    assert a.keys() == b.keys()  # no _orig_mod. prefixes: any plantkit command reads it
    # The same training up to the compiler's float reordering.
    assert max(float((a[k].float() - b[k].float()).abs().max()) for k in a) < 1e-3
    assert compiled.val_top1 == pytest.approx(plain.val_top1, abs=0.05)


def test_uint8_batches_are_normalised_by_the_expert_as_the_loader_would():
    expert = create_expert("test_resnet", 3, input_size=32, mean=(0.4, 0.5, 0.6),
                           std=(0.2, 0.3, 0.25))
    pixels = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    normalised = ToNormalizedFloat((0.4, 0.5, 0.6), (0.2, 0.3, 0.25))(pixels)
    from_uint8, _ = expert.predict_batch(pixels)
    from_float, _ = expert.predict_batch(normalised)
    assert torch.equal(from_uint8, from_float)
    # Not the raw pixel values cast to float: that would be another input altogether.
    from_cast, _ = expert.predict_batch(pixels.float())
    assert not torch.allclose(from_cast, from_float)


def test_train_and_predict_read_a_raw_cache_by_themselves_and_learn_the_same(data_root,
                                                                              tmp_path):
    dataset = open_dataset(data_root)
    folder = build_cache(dataset, tmp_path, resize=40, fmt="raw", workers=0)
    common = ("--artifacts", tmp_path, "train", "--data", data_root, "--arch", "test_resnet",
              "--resize", "40", "--crop", "32", "--batch-size", "16", "--workers", "0",
              "--epochs", "1")
    code, _, err = cli(*common, "--expert", "cached")
    assert code == 0, err
    line = USING_CACHE_LINE.format(folder=folder)
    assert " ".join(err.split()).count(" ".join(line.split())) == 1  # said once, not per step
    code, _, err = cli(*common, "--expert", "files", "--no-cache")
    assert code == 0, err
    assert "decoded image cache" not in err
    # raw pixels are the loader's own: the same batches, the same weights.
    cached = torch.load(tmp_path / "experts" / "cached" / "weights.pt", weights_only=True)
    files = torch.load(tmp_path / "experts" / "files" / "weights.pt", weights_only=True)
    assert all(torch.equal(cached[k], files[k]) for k in cached)

    code, _, err = cli("--artifacts", tmp_path, "predict", "--expert", "files",
                       "--workers", "0")
    assert code == 0, err
    assert "decoded image cache" in err
    code, _, err = cli("--artifacts", tmp_path, "predict", "--expert", "files",
                       "--workers", "0", "--no-cache")
    assert code == 0, err
    assert "decoded image cache" not in err


def test_predict_takes_several_experts_and_reports_each(data_root, tmp_path):
    for name in ("a", "b"):
        train_expert(TrainConfig(data=str(data_root), name=name, **TINY), artifacts=tmp_path,
                     quiet=True)
    code, out, err = cli("--artifacts", tmp_path, "predict", "--expert", "a", "--expert", "b",
                         "--expert", "a", "--split", "val", "--workers", "0", "--json")
    assert code == 0, err
    summaries = json.loads(out)
    assert [s["expert"] for s in summaries] == ["a", "b"]  # the repeated one once
    assert all(s["rows"] == {"val": 5 * CLASSES} for s in summaries)
    code, _, err = cli("--artifacts", tmp_path, "predict", "--expert", "a", "--expert", "nope")
    assert code == 2 and "nope" in err


def test_the_device_pool_runs_one_job_per_device_and_keeps_their_order():
    jobs = [["--version"], ["data", "synth", "--scale", "-1"], ["--version"]]
    done = []
    results = run_one_per_device(jobs, 2, on_done=done.append)
    assert [r.returncode for r in results] == [0, 2, 0]
    assert results[0].stdout.startswith("plantkit ")
    assert {results[0].device, results[1].device} == {0, 1}  # the first two side by side
    assert len(done) == 3
