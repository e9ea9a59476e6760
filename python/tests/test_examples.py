"""Every program of examples/python runs as it is (each exits non-zero when what it shows
did not happen)."""
from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from conftest import REPO

EXAMPLES = sorted(glob.glob(os.path.join(REPO, "examples", "python", "*.py")))


def test_there_are_examples():
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("path", EXAMPLES, ids=[os.path.basename(p) for p in EXAMPLES])
def test_example_runs(path):
    pytest.importorskip("numpy")
    r = subprocess.run([sys.executable, path], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{os.path.basename(path)} failed:\n{r.stdout}\n{r.stderr}"
    assert r.stdout.strip(), "the example printed nothing"


def test_benchmark_module_prints_json():
    import json

    r = subprocess.run([sys.executable, "-m", "hyperfabric.benchmark", "--json", "--seconds", "0.3",
                        "--iterations", "200"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["latency"]["median_ns"] > 0 and out["latency"]["p99_ns"] >= out["latency"]["median_ns"]
    assert out["throughput"]["gb_per_s"] > 0 and out["throughput"]["size_bytes"] == 1 << 20
