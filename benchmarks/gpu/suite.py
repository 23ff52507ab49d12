"""plantkit's GPU throughput suite: one JSON line per measurement, then a summary line.

    python benchmarks/gpu/suite.py [--dry-run] [--out FILE] [--budget SECONDS] [--work DIR]

(benchmarks/gpu/suite.sh runs this; benchmarks/gpu/README.md says what each case measures.)
Steps, in the order the time budget favours: the dataset (Pl@ntNet-sized JPEGs, process
pool), then with amp: a (plain torch ceiling), b (plantkit on synthetic tensors), the decoded
image cache (`plantkit data cache`), c (`plantkit train` from it), d (the authors' reference
loop), predict; then the same without amp. Every step runs in its own process group with a
time cap and within the suite's budget: a step that fails or runs out of time prints a line
with "error", one that does not fit or does not apply a line with "skipped", and the suite
goes on. GPU utilisation is sampled throughout (nvidia-smi every 500 ms) and summarised over
each measurement's window; null without nvidia-smi.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from common import COMPILE_BACKEND_ENV, RESULT_PREFIX, ROOT, plantkit_compile_support

HERE = Path(__file__).resolve().parent
WORKERS = max(1, min(14, (os.cpu_count() or 2) - 2))
PROFILES = {
    # One H200 with 16 cores: ResNet-18, 224 px crops of 256 px resizes.
    "gpu": {
        "arch": "resnet18", "resize": 256, "crop": 224, "batch_size": 256, "classes": 100,
        "workers": WORKERS, "unique": 3000, "train": 40000, "val_per_class": 2,
        "test_per_class": 1, "draw_seconds": 30, "warmup_steps": 5, "warmup_s": 2.0,
        "min_steps": 10, "measure_s": 4.0, "epochs": 2, "compile_backend": "inductor",
        "budget": 450, "min_left": 12,
        # Caps (seconds) per step; compile ones include torch.compile's first compilation.
        "caps": {"gen": 90, "cache": 90, "eager": 45, "compile": 120, "c": 90,
                 "c_compile": 150, "d": 45, "predict": 30, "help": 60},
    },
    # This CPU machine: every code path but the CUDA-only ones, in about 3 minutes.
    "dry": {
        "arch": "test_resnet", "resize": 36, "crop": 32, "batch_size": 8, "classes": 4,
        "workers": 2, "unique": 24, "train": 48, "val_per_class": 2, "test_per_class": 1,
        "draw_seconds": 30, "warmup_steps": 1, "warmup_s": 0.0, "min_steps": 2,
        "measure_s": 0.0, "epochs": 2, "compile_backend": "aot_eager", "budget": 175,
        "min_left": 5,
        "caps": {"gen": 60, "cache": 60, "eager": 40, "compile": 60, "c": 60,
                 "c_compile": 90, "d": 40, "predict": 40, "help": 40},
    },
}
CASE_KEYS = ("case", "amp", "compile", "batch_size", "workers", "images", "seconds",
             "images_per_s", "gpu_util_mean", "gpu_util_p50", "gpu_mem_max_mib", "gpu_samples",
             "device")


class GpuSampler:
    """utilization.gpu and memory.used every 500 ms from `nvidia-smi -lms 500`, timestamped."""

    def __init__(self, period_ms: int = 500):
        self.samples: list[tuple[float, float, float]] = []
        self.name: str | None = None
        self.process = None
        smi = shutil.which("nvidia-smi")
        if smi is None:
            return
        try:
            self.name = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader", "-i",
                                        "0"], capture_output=True, text=True, timeout=20,
                                       check=True).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            return
        # Line-buffered, so that every sample arrives as it is taken.
        prefix = ["stdbuf", "-oL"] if shutil.which("stdbuf") else []
        self.process = subprocess.Popen(
            [*prefix, smi, "--query-gpu=timestamp,utilization.gpu,memory.used",
             "--format=csv,noheader,nounits", "-i", "0", "-lms", str(period_ms)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def available(self) -> bool:
        return self.process is not None

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            parts = [p.strip() for p in line.split(",")]
            try:
                when = datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
                self.samples.append((when, float(parts[1]), float(parts[2])))
            except (ValueError, IndexError):
                continue

    def stats(self, window) -> dict:
        none = {"gpu_util_mean": None, "gpu_util_p50": None, "gpu_mem_max_mib": None,
                "gpu_samples": None}
        if not self.available or not window:
            return none
        start, end = window
        deadline = time.time() + 1.5  # the sample after the window's end, if it is on its way
        while time.time() < deadline and not any(t >= end for t, _, _ in self.samples[-4:]):
            time.sleep(0.1)
        inside = [(u, m) for t, u, m in list(self.samples) if start <= t <= end]
        if not inside:
            return {**none, "gpu_samples": 0}
        utils = [u for u, _ in inside]
        return {"gpu_util_mean": round(statistics.fmean(utils), 1),
                "gpu_util_p50": round(statistics.median(utils), 1),
                "gpu_mem_max_mib": max(m for _, m in inside), "gpu_samples": len(inside)}

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Suite:
    def __init__(self, args):
        self.dry = args.dry_run
        self.p = dict(PROFILES["dry" if self.dry else "gpu"])
        if args.budget:
            self.p["budget"] = args.budget
        if args.train_images:
            self.p["train"] = args.train_images
        self.start = time.time()
        self.deadline = self.start + self.p["budget"]
        self.work = Path(args.work or f"/tmp/plantkit-gpu-suite{'-dry' if self.dry else ''}")
        self.work.mkdir(parents=True, exist_ok=True)
        self.logs = self.work / "logs"
        if self.logs.exists():
            shutil.rmtree(self.logs)
        self.logs.mkdir()
        self.artifacts = self.work / "artifacts"
        if self.artifacts.exists():  # a fresh output root: experts, cache
            shutil.rmtree(self.artifacts)
        self.data = self.work / "dataset" / "data"
        self.out = open(args.out, "a") if args.out else None  # closed in close()
        self.python = sys.executable
        self.gpu = GpuSampler()
        self.device = self.gpu.name or f"cpu ({os.cpu_count()} cores)"
        self.results: list[dict] = []
        self.c_case = "c"
        self.train_compile = False
        self.current: subprocess.Popen | None = None
        self.env = dict(os.environ)
        self.env.update(PYTHONUNBUFFERED="1", KERAS_BACKEND="torch", COLUMNS="200",
                        PLANTKIT_ARTIFACTS=str(self.artifacts),
                        PYTHONPATH=os.pathsep.join(
                            [str(ROOT), str(ROOT / "benchmarks"), str(HERE)]
                            + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        if self.dry:
            self.env[COMPILE_BACKEND_ENV] = self.p["compile_backend"]

    # -- output ------------------------------------------------------------------------------

    def emit(self, record: dict) -> None:
        ordered = {k: record[k] for k in CASE_KEYS if k in record}
        ordered.update({k: v for k, v in record.items() if k not in ordered})
        line = json.dumps(ordered)
        print(line, flush=True)
        if self.out is not None:
            self.out.write(line + "\n")
            self.out.flush()
        self.results.append(ordered)

    def say(self, message: str) -> None:
        print(f"[suite {time.time() - self.start:6.1f}s] {message}", file=sys.stderr, flush=True)

    def base(self, case: str, **extra) -> dict:
        p = self.p
        return {"case": case, "amp": None, "compile": None, "batch_size": p["batch_size"],
                "workers": p["workers"], "device": self.device, "arch": p["arch"],
                "crop": p["crop"], "resize": p["resize"], **extra}

    def left(self) -> float:
        return self.deadline - time.time()

    # -- processes ---------------------------------------------------------------------------

    def run_process(self, cmd: list[str], name: str, cap: float, *, on_stdout=None,
                    on_stderr=None) -> tuple[int | None, bool, float, Path]:
        """Run `cmd` in its own process group for at most min(cap, time left); log its output.

        Returns (exit code or None when killed, timed out, seconds, log file).
        """
        log = self.logs / f"{name}.log"
        timeout = max(1.0, min(cap, self.left()))
        start = time.perf_counter()
        lock = threading.Lock()
        with open(log, "w") as handle:
            handle.write(" ".join(cmd) + "\n")
            process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, bufsize=1, cwd=ROOT, env=self.env,
                                       start_new_session=True)
            self.current = process

            def pump(stream, callback, tag):
                for line in stream:
                    with lock:
                        handle.write(tag + line)
                        handle.flush()
                    if callback is not None:
                        try:
                            callback(line.rstrip("\n"))
                        except Exception as exc:  # noqa: BLE001 - a bad line must not stop it
                            with lock:
                                handle.write(f"[suite] callback failed: {exc!r}\n")

            threads = [threading.Thread(target=pump, args=(process.stdout, on_stdout, ""),
                                        daemon=True),
                       threading.Thread(target=pump, args=(process.stderr, on_stderr, "! "),
                                        daemon=True)]
            for thread in threads:
                thread.start()
            timed_out = False
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                self.kill_group(process)
                process.wait()
                for thread in threads:
                    thread.join(5)
                self.current = None
        return (None if timed_out else process.returncode), timed_out, \
            time.perf_counter() - start, log

    @staticmethod
    def kill_group(process: subprocess.Popen) -> None:
        """End what is left of the process group this suite started for `process`."""
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    @staticmethod
    def last_error(log: Path) -> str:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        for line in reversed(lines):
            text = line[2:] if line.startswith("! ") else line
            if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b|^Error\b|^error\b", text):
                return text[:400]
        return (lines[-1][:400] if lines else "no output")

    def cli(self) -> list[str]:
        return [self.python, str(HERE / "plantkit_cli.py")]

    def fits(self, record: dict, need: float) -> bool:
        """False (after emitting a 'skipped' line) when less than `need` s of budget are left."""
        if self.left() >= need:
            return True
        self.emit({**record, "skipped": f"time budget: {self.left():.0f} s left of "
                                        f"{self.p['budget']} s"})
        return False

    # -- steps -------------------------------------------------------------------------------

    def generate(self) -> bool:
        p = self.p
        record = self.base("dataset")
        cmd = [self.python, str(HERE / "dataset.py"), str(self.work / "dataset"),
               "--unique", str(p["unique"]), "--train", str(p["train"]),
               "--classes", str(p["classes"]), "--val-per-class", str(p["val_per_class"]),
               "--test-per-class", str(p["test_per_class"]),
               "--processes", str(os.cpu_count() or 1), "--max-seconds", str(p["draw_seconds"])]
        info: dict = {}

        def read(line):
            if line.startswith("{"):
                info.update(json.loads(line))

        rc, timed_out, seconds, log = self.run_process(cmd, "dataset", p["caps"]["gen"],
                                                       on_stdout=read)
        if rc != 0 or not info:
            self.emit({**record, "error": "timeout" if timed_out else self.last_error(log),
                       "log": str(log)})
            return False
        self.emit({**record, "images": sum(info["splits"].values()),
                   "seconds": round(seconds, 2), **{k: v for k, v in info.items()
                                                    if k not in ("wanted", "seconds")}})
        return True

    def group(self, case: str, configs: list[dict], cap_of) -> None:
        """Run `configs` of `case` in one cases.py process; one line per config."""
        p = self.p
        todo = []
        for config in configs:
            record = self.base(case, **config)
            if config.get("skip"):
                self.emit({**{k: v for k, v in record.items() if k != "skip"},
                           "skipped": config["skip"]})
            else:
                todo.append({**config, "need": max(p["min_left"], cap_of(config) / 3)})
        if not todo:
            return
        if self.left() < todo[0]["need"]:
            for config in todo:
                self.fits(self.base(case, **{k: v for k, v in config.items() if k != "need"}),
                          config["need"])
            return
        opts = {k: p[k] for k in ("arch", "classes", "crop", "resize", "batch_size", "workers",
                                  "warmup_steps", "warmup_s", "min_steps", "measure_s",
                                  "compile_backend")}
        opts.update(data=str(self.data), artifacts=str(self.artifacts), deadline=self.deadline,
                    configs=todo)
        got: dict[int, dict] = {}

        name = f"{case}-" + ("amp" if todo[0]["amp"] else "fp32")
        name += "" if all(c["amp"] == todo[0]["amp"] for c in todo) else "-all"

        def read(line):
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX):])
                index = result.pop("index")
                got[index] = result
                if "error" in result:
                    result["log"] = str(self.logs / f"{name}.log")
                self.emit_result(case, todo[index], result)
        self.say(f"{case}: {len(todo)} configuration(s)")
        rc, timed_out, seconds, log = self.run_process(
            [self.python, str(HERE / "cases.py"), case, json.dumps(opts)], name,
            sum(cap_of(c) for c in todo), on_stdout=read)
        for index, config in enumerate(todo):
            if index not in got:
                why = (f"timeout: the step ran out of its {seconds:.0f} s" if timed_out
                       else f"exit code {rc}: {self.last_error(log)}")
                config = {k: v for k, v in config.items() if k != "need"}
                self.emit({**self.base(case, **config), "error": why, "log": str(log)})

    def emit_result(self, case: str, config: dict, result: dict) -> None:
        record = self.base(case, **{k: v for k, v in config.items() if k != "need"})
        if "window" in result:
            record.update(self.gpu.stats(result["window"]))
        record.update({k: v for k, v in result.items() if k != "window"})
        if "error" in result or "skipped" in result:
            record = {k: v for k, v in record.items() if not k.startswith("gpu_")}
        self.emit(record)
        if "images_per_s" in result:
            self.say(f"{case} amp={config['amp']} compile={config.get('compile')} "
                     f"{config.get('source', '')}: {result['images_per_s']:,.1f} images/s")

    def help_text(self, *args: str) -> str | None:
        """The output of `plantkit ARGS --help`, or None when the command does not exist."""
        lines: list[str] = []
        rc, _, _, _ = self.run_process([*self.cli(), *args, "--help"],
                                       "help-" + "-".join(args), self.p["caps"]["help"],
                                       on_stdout=lines.append, on_stderr=lines.append)
        return "\n".join(lines) if rc == 0 else None

    def build_cache(self, cache_help: str) -> bool:
        p = self.p
        record = self.base("cache", images=p["train"] + p["classes"] * (
            p["val_per_class"] + p["test_per_class"]))
        if not self.fits(record, p["min_left"]):
            return False
        cmd = [*self.cli(), "--artifacts", str(self.artifacts), "data", "cache",
               "--data", str(self.data), "--resize", str(p["resize"])]
        if "--workers" in cache_help:
            cmd += ["--workers", str(os.cpu_count() or 1)]
        self.say("plantkit data cache")
        rc, timed_out, seconds, log = self.run_process(cmd, "cache", p["caps"]["cache"])
        if rc != 0:
            self.emit({**record, "error": "timeout" if timed_out else self.last_error(log),
                       "log": str(log)})
            return False
        cache_dir = self.artifacts / "cache"
        size = sum(f.stat().st_size for f in cache_dir.rglob("*") if f.is_file()) \
            if cache_dir.is_dir() else None
        self.emit({**record, "workers": os.cpu_count() if "--workers" in cache_help else None,
                   "seconds": round(seconds, 2),
                   "images_per_s": round(record["images"] / seconds, 1),
                   "cache_mib": round(size / 2**20, 1) if size else None,
                   "note": "whole command: process start and imports included"})
        return True

    def train(self, case: str, amp: bool, compiled: bool) -> None:
        """Case c: `plantkit train` for `epochs` epochs; the last epoch's images_per_s."""
        p = self.p
        record = self.base(case, amp=amp, compile=compiled,
                           source="decoded image cache" if case == "c" else "jpeg files")
        cap = p["caps"]["c_compile" if compiled else "c"]
        if not self.fits(record, max(p["min_left"], cap / 3)):
            return
        name = f"{case}-{'amp' if amp else 'fp32'}-{'compile' if compiled else 'eager'}"
        cmd = [*self.cli(), "--artifacts", str(self.artifacts), "train", "--data",
               str(self.data), "--arch", p["arch"], "--epochs", str(p["epochs"]),
               "--batch-size", str(p["batch_size"]), "--workers", str(p["workers"]),
               "--resize", str(p["resize"]), "--crop", str(p["crop"]), "--expert", name,
               "--overwrite"]
        cmd += ["--amp"] if amp else []
        cmd += ["--compile"] if compiled else []
        epoch_ends: dict[int, float] = {}
        read_cache = []

        def stamp(line):  # RichProgress's summary line at the end of each epoch
            if "using the decoded image cache" in line:  # plantkit says so, once
                read_cache.append(True)
            match = re.match(r"^\s*epoch (\d+)/\d+ .*loss", line)
            if match:
                epoch_ends[int(match.group(1))] = time.time()

        self.say(f"plantkit train {name}")
        rc, timed_out, seconds, log = self.run_process(cmd, name, cap, on_stderr=stamp)
        history = self.artifacts / "experts" / name / "history.csv"
        if rc != 0 or not history.is_file():
            self.emit({**record, "error": ("timeout" if timed_out else
                                           f"exit code {rc}: {self.last_error(log)}"),
                       "log": str(log)})
            return
        with open(history, newline="") as f:
            rows = list(csv.DictReader(f))
        last = rows[-1]
        rate = float(last["images_per_s"])
        images = p["train"] - (1 if p["train"] % p["batch_size"] == 1 else 0)
        train_seconds = images / rate
        # The last epoch starts when the one before it prints its summary line (1-based).
        start = epoch_ends.get(len(rows) - 1)
        window = None if start is None else [start, start + train_seconds]
        self.emit({**record, "images": images, "seconds": round(train_seconds, 3),
                   "images_per_s": round(rate, 1), **self.gpu.stats(window),
                   "epoch": len(rows), "epochs": p["epochs"],
                   "epoch_seconds": round(float(last["seconds"]), 3),
                   "epochs_images_per_s": [round(float(r["images_per_s"]), 1) for r in rows],
                   "wall_s": round(seconds, 2), "history": str(history),
                   "read_the_cache": bool(read_cache)})
        self.say(f"{case} amp={amp} compile={compiled}: {rate:,.1f} images/s")

    # -- the plan ----------------------------------------------------------------------------

    def run(self) -> None:
        """The steps, amp first: a, b, cache, c, d, predict; then without amp a, b, d, predict
        and c last (its compiled run is the dearest). The dry run does both amps in one tier."""
        p = self.p
        support = plantkit_compile_support()
        self.emit({**self.base("start"), "dry_run": self.dry, "budget_s": p["budget"],
                   "python": sys.version.split()[0], "work": str(self.work),
                   "plantkit_compile": support, "profile": {k: v for k, v in p.items()
                                                            if k != "caps"}})
        have_data = self.generate()
        tiers = [[True, False]] if self.dry else [[True], [False]]
        for first, amps in zip((True, False), tiers):
            self.synthetic_groups(amps, support)
            if not have_data:
                for case in ("c", "d", "predict"):
                    for amp in amps:
                        self.emit({**self.base(case, amp=amp),
                                   "skipped": "no dataset (its step failed)"})
                continue
            if first:
                self.prepare_c()
                self.train_configs(amps)
            self.loader_groups(amps)
            if not first:
                self.train_configs(amps)
        self.summary()

    def synthetic_groups(self, amps: list[bool], support: dict) -> None:
        caps = self.p["caps"]

        def cap_of(config):
            return caps["compile" if config["compile"] else "eager"]

        self.group("a", [{"amp": a, "compile": c} for a in amps for c in (False, True)], cap_of)
        skip = None if any(support.values()) else (
            "plantkit has no torch.compile switch yet (neither create_expert(compile=) nor "
            "TrainConfig.compile)")
        self.group("b", [{"amp": a, "compile": c, **({"skip": skip} if c and skip else {})}
                         for a in amps for c in (False, True)], cap_of)

    def loader_groups(self, amps: list[bool]) -> None:
        caps = self.p["caps"]
        self.group("d", [{"amp": a, "compile": False} for a in amps], lambda c: caps["d"])
        self.group("predict", [{"amp": a, "compile": False, "source": s} for a in amps
                               for s in ("loader", "synthetic")], lambda c: caps["predict"])

    def prepare_c(self) -> None:
        """Which commands plantkit has, and the decoded image cache when it has the command."""
        cache_help = self.help_text("data", "cache")
        self.train_compile = "--compile" in (self.help_text("train") or "")
        self.c_case = "c_jpeg"
        if cache_help is None:
            self.emit({"case": "c", "skipped": "no plantkit data cache command"})
        elif self.build_cache(cache_help):
            self.c_case = "c"

    def train_configs(self, amps: list[bool]) -> None:
        case = self.c_case
        for amp in amps:
            if case == "c_jpeg" and not amp and not self.dry:
                continue  # without the cache: the amp run alone, for the comparison with d
            for compiled in (False, True):
                if compiled and not self.train_compile:
                    self.emit({**self.base(case, amp=amp, compile=True),
                               "skipped": "plantkit train has no --compile option"})
                    continue
                self.train(case, amp, compiled)

    def summary(self) -> None:
        def best(case, amp=True, compiled=None):
            rates = [r for r in self.results if r.get("case") == case and r.get("amp") == amp
                     and "images_per_s" in r and (compiled is None or r["compile"] == compiled)]
            return max(rates, key=lambda r: r["images_per_s"]) if rates else None

        detail = []
        for compiled in (False, True):
            b, c = best("b", compiled=compiled), best("c", compiled=compiled)
            if b and c:
                detail.append({"compile": compiled, "b": b["images_per_s"],
                               "c": c["images_per_s"],
                               "ratio": round(c["images_per_s"] / b["images_per_s"], 3)})
        b, c = best("b"), best("c")
        ratio = round(c["images_per_s"] / b["images_per_s"], 3) if b and c else None
        by_case = {case: (best(case) or {}).get("images_per_s")
                   for case in ("a", "b", "c", "c_jpeg", "d", "predict")}
        tracebacks = sorted(log.name for log in self.logs.glob("*.log")
                            if "Traceback (most recent call last)" in log.read_text(
                                errors="replace"))
        self.emit({
            "case": "summary", "device": self.device, "dry_run": self.dry,
            "c_over_b": ratio, "c_over_b_target": 0.9,
            "c_over_b_met": None if ratio is None else ratio >= 0.9,
            "c_over_b_by_compile": detail,
            "best_amp_images_per_s": by_case["c"], "best_amp_target": 6000,
            "best_amp_met": None if by_case["c"] is None else by_case["c"] >= 6000,
            "best_amp_config": None if c is None else {"case": "c", "compile": c["compile"]},
            "best_amp_by_case": by_case,
            "errors": sum("error" in r for r in self.results),
            "skipped": sum("skipped" in r for r in self.results),
            "logs_with_traceback": tracebacks,
            "seconds": round(time.time() - self.start, 1),
        })

    def close(self) -> None:
        if self.current is not None:
            self.kill_group(self.current)
        self.gpu.close()
        if self.out is not None:
            self.out.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny sizes on the CPU: every code path but the CUDA-only ones")
    parser.add_argument("--out", help="also append the JSON lines to this file")
    parser.add_argument("--budget", type=float, help="seconds for the whole suite")
    parser.add_argument("--train-images", type=int, help="train images of the dataset")
    parser.add_argument("--work", help="working folder (dataset, artifacts, logs)")
    args = parser.parse_args()
    suite = Suite(args)

    def stop(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    try:
        suite.run()
    except KeyboardInterrupt as exc:
        suite.emit({"case": "summary", "error": f"interrupted ({exc})"})
        raise SystemExit(130) from None
    finally:
        suite.close()


if __name__ == "__main__":
    main()
