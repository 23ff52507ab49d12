"""benchmarks/bench_longtail.py --quick, as CI runs it: every row trains, is scored and printed
(no timing is asserted; the numbers are the benchmark's business)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_longtail.py"


def test_the_quick_benchmark_prints_one_row_per_method(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--workdir",
                             str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| method")]
    names = [row.split("|")[1].strip() for row in rows]
    assert names == ["ce", "ref: inverse sampler", "balanced-softmax", "ldam-drw",
                     "cRT (ce expert)", "tau-norm (ce expert)", "logit adjustment (ce expert)"]
    for row in rows:
        micro, macro = (float(cell) for cell in row.split("|")[2:4])
        assert 0.0 <= micro <= 100.0 and 0.0 <= macro <= 100.0
    assert rows[0].split("|")[4:6] == [" +0.0 ", " +0.0 "]  # the deltas are against ce
    assert re.search(r"12 species \(3 many, 3 medium, 6 few\)", result.stdout)
