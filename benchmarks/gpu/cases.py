"""One measurement of the GPU suite per process: python cases.py CASE 'JSON OPTIONS'.

Cases (ResNet-18-sized timm model, train images/s unless said otherwise):

- a: the ceiling, a plain torch loop on random tensors already on the device: SGD (momentum
  0.9, Nesterov, weight decay 1e-4), cross-entropy; with amp, bfloat16 autocast and
  channels_last (as plantkit's Expert does); with compile, torch.compile(model).
- b: plantkit on random tensors already on the device: create_expert + compile_expert (the
  recipe's TorchSGD, loss and metrics) trained with Keras `fit` over EpochBatches, with the
  per-batch callbacks plantkit's training runs (StopOnNaN, RichProgress disabled).
- d: the dataset authors' reference loop: torchvision ImageFolder with Resize(256),
  RandomCrop(224), ToTensor, Normalize (benchmarks/bench_input_pipeline.py's
  reference_loader), a DataLoader with the same workers, the plain torch loop of a, and
  loss.item() per batch as the authors' loop does.
- predict: eval images/s of Expert.predict_batch (torch.inference_mode, float32 logits
  brought to the CPU per batch as plantkit's prediction does), over plantkit's eval loader
  (from the decoded image cache when there is one) or over random tensors on the device.

Each measures after a warm-up (the first steps, compilation, worker start) for at least
`min_steps` steps and `measure_s` seconds, synchronising the device at both ends, and
prints one `@@RESULT {json}` line. Case c (plantkit train from the cache) is run by
suite.py through the command line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

from common import add_paths, force_compile_backend, plantkit_compile_support, print_result

add_paths()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def device_info() -> tuple[torch.device, str]:
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.cuda.get_device_name(0)
    return torch.device("cpu"), f"cpu ({torch.get_num_threads()} threads)"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Meter:
    """Warm-up, then a timed stretch of steps; call step() once per batch of `batch` images."""

    def __init__(self, opts: dict, device: torch.device):
        self.opts = opts
        self.device = device
        self.start = time.perf_counter()
        self.steps = 0
        self.phase = "first"
        self.result: dict = {}

    def step(self, images: int) -> bool:
        """Count one finished step of `images` images; True once the measurement is done."""
        now = time.perf_counter()
        self.steps += 1
        if self.phase == "first":  # the first step: compilation, allocation, autotuning
            synchronize(self.device)
            now = time.perf_counter()
            self.result["first_step_s"] = round(now - self.start, 3)
            self.phase, self.warm_start, self.steps = "warm", now, 0
        elif self.phase == "warm":
            if (self.steps >= self.opts["warmup_steps"]
                    and now - self.warm_start >= self.opts["warmup_s"]):
                synchronize(self.device)
                self.result["warmup_s"] = round(time.perf_counter() - self.start, 3)
                self.phase, self.steps, self.images = "measure", 0, 0
                self.t0, self.wall0 = time.perf_counter(), time.time()
        else:
            self.images += images
            if (self.steps >= self.opts["min_steps"]
                    and now - self.t0 >= self.opts["measure_s"]):
                synchronize(self.device)
                seconds = time.perf_counter() - self.t0
                self.result.update(images=self.images, steps=self.steps,
                                   seconds=round(seconds, 4),
                                   images_per_s=round(self.images / seconds, 1),
                                   window=[self.wall0, time.time()])
                self.phase = "done"
                return True
        return False

    @property
    def done(self) -> bool:
        return self.phase == "done"


def random_batches(opts: dict, device: torch.device, channels_last: bool, n: int = 4):
    g = torch.Generator().manual_seed(0)
    size, batch, classes = opts["crop"], opts["batch_size"], opts["classes"]
    out = []
    for _ in range(n):
        images = torch.randn(batch, 3, size, size, generator=g).to(device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        out.append((images, torch.randint(0, classes, (batch,), generator=g).to(device)))
    return out


def torch_trainer(opts: dict, device: torch.device):
    """The plain loop's model and step(images, labels) -> loss tensor."""
    import timm

    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    amp, channels_last = opts["amp"], opts["amp"] and device.type == "cuda"
    model = timm.create_model(opts["arch"], num_classes=opts["classes"]).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                                weight_decay=1e-4)
    forward = torch.compile(model, backend=opts["compile_backend"]) if opts["compile"] else model

    def step(images, labels):
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(forward(images).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    return step, channels_last


def case_a(opts: dict) -> dict:
    device, name = device_info()
    step, channels_last = torch_trainer(opts, device)
    batches = itertools.cycle(random_batches(opts, device, channels_last))
    meter = Meter(opts, device)
    loss = None
    while not meter.done:
        loss = step(*next(batches))
        meter.step(opts["batch_size"])
    return {**meter.result, "device": name, "source": "synthetic",
            "final_loss": float(loss) if loss is not None else None}


def plantkit_expert(opts: dict):
    """create_expert + compile_expert as plantkit's training does (compile= where it has one)."""
    import dataclasses

    from plantkit.models.expert import create_expert
    from plantkit.training.build import compile_expert
    from plantkit.training.config import TrainConfig

    support = plantkit_compile_support()
    expert_kwargs, config_kwargs = {}, {}
    if opts.get("compile"):
        if support["create_expert"]:
            expert_kwargs["compile"] = True
        if support["train_config"]:
            config_kwargs["compile"] = True
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(batch_size=opts["batch_size"],
                         **{k: v for k, v in config_kwargs.items() if k in fields})
    torch.manual_seed(0)
    expert = create_expert(opts["arch"], opts["classes"], input_size=opts["crop"],
                           amp=opts["amp"], **expert_kwargs)
    return expert, config, compile_expert


def case_b(opts: dict) -> dict:
    from plantkit.backend import keras
    from plantkit.training import callbacks as cb
    from plantkit.training.batches import EpochBatches, keras_input

    device, name = device_info()
    expert, config, compile_expert = plantkit_expert(opts)
    compile_expert(expert, config, opts["classes"])
    batches = random_batches(opts, expert.device, channels_last=False)
    meter = Meter(opts, expert.device)
    max_steps = 1_000_000

    def loader_for_epoch(_epoch):
        for step in range(max_steps):
            images, labels = batches[step % len(batches)]
            yield images, labels, torch.arange(len(labels))

    class Stop(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if meter.step(opts["batch_size"]):
                self.model.stop_training = True

    train = EpochBatches(loader_for_epoch, max_steps, device=expert.device, min_batch=2)
    callbacks = [cb.StopOnNaN(), cb.RichProgress(1, max_steps * opts["batch_size"], 0,
                                                 opts["batch_size"], disable=True), Stop()]
    expert.fit(keras_input(train), epochs=1, verbose=0, shuffle=False, callbacks=callbacks)
    return {**meter.result, "device": name, "source": "synthetic",
            "plantkit_compile": plantkit_compile_support() if opts.get("compile") else None}


def case_d(opts: dict) -> dict:
    from bench_input_pipeline import reference_loader

    device, name = device_info()
    step, _ = torch_trainer(opts, device)
    loader = reference_loader(Path(opts["data"]) / "train", argparse.Namespace(
        crop=opts["crop"], resize=opts["resize"], eval=False, batch_size=opts["batch_size"],
        workers=opts["workers"]))
    meter = Meter(opts, device)
    passes = 0
    while not meter.done:
        passes += 1
        for images, labels in loader:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            loss = step(images, labels)
            loss.item()  # the authors' loop sums loss.item() per batch
            if meter.step(len(labels)):
                break
    return {**meter.result, "device": name, "source": "jpeg (torchvision ImageFolder, PIL)",
            "passes": passes}


def case_predict(opts: dict) -> dict:
    from plantkit.models.expert import create_expert

    device, name = device_info()
    torch.manual_seed(0)
    expert = create_expert(opts["arch"], opts["classes"], input_size=opts["crop"],
                           amp=opts["amp"])
    meter = Meter(opts, expert.device)
    extra: dict = {}
    if opts["source"] == "synthetic":
        batches = itertools.cycle(random_batches(opts, expert.device, channels_last=False))
        while not meter.done:
            logits, _ = expert.predict_batch(next(batches)[0])
            logits.cpu()
            meter.step(opts["batch_size"])
        return {**meter.result, "device": name, "source": "synthetic"}
    from plantkit.data.layout import open_dataset
    from plantkit.data.loading import make_loader
    from plantkit.predict import expert_transform_spec

    dataset = open_dataset(opts["data"])
    cache = None
    try:
        from plantkit.data.cache import find_cache

        cache = find_cache(opts["artifacts"], dataset, opts["resize"])
    except ImportError:
        extra["cache_module"] = False
    spec = expert_transform_spec(expert, opts["resize"])
    loader = make_loader(dataset, "train", spec=spec, train=False,
                         batch_size=opts["batch_size"], workers=opts["workers"],
                         # As plantkit predict: uint8 crops to a GPU, normalised there.
                         normalize=expert.device.type == "cpu",
                         **({"cache": cache} if cache is not None else {}))
    passes = 0
    while not meter.done:
        passes += 1
        for images, _labels, _rows in loader:
            logits, _ = expert.predict_batch(images)
            logits.cpu()
            if meter.step(len(images)):
                break
    return {**meter.result, "device": name, "passes": passes, **extra,
            "source": "plantkit loader, " + ("decoded image cache" if cache else "jpeg files")}


CASES = {"a": case_a, "b": case_b, "d": case_d, "predict": case_predict}


def run_config(case: str, opts: dict) -> dict:
    """One configuration; an exception becomes {"error": ...} (its traceback goes to stderr)."""
    import gc
    import traceback

    try:
        return CASES[case](opts)
    except Exception as exc:  # noqa: BLE001 - one failing configuration must not stop the rest
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}"[:400]}
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if opts.get("compile"):
            torch._dynamo.reset()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("options", help="JSON object of the case's options, with `configs`: "
                        "the configurations to run in turn (see suite.py)")
    args = parser.parse_args()
    base = json.loads(args.options)
    forced = force_compile_backend()
    if forced:
        base["compile_backend"] = forced
    for index, config in enumerate(base.pop("configs", [{}])):
        opts = {**base, **config}
        if time.time() + opts.get("need", 0) > opts.get("deadline", float("inf")):
            result = {"skipped": "time budget"}
        else:
            result = run_config(args.case, opts)
        result.update(index=index, pid=os.getpid(),
                      compile_backend=opts["compile_backend"] if opts.get("compile") else None)
        print_result(result)


if __name__ == "__main__":
    main()
