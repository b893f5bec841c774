"""
Smoke test of the benchmark runner (bench/): not a benchmark. One short
round of the accept workload checks that the runner, the server processes,
the compiled C load generator and the JSON output work together; it takes a
few seconds and is bounded at 30. The numbers are not checked.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tool

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_quick_run_writes_the_accept_row(tmp_path: Path) -> None:
    require_tool("gcc")
    require_tool("taskset")
    if not {0, 1} <= os.sched_getaffinity(0):
        pytest.skip("the benchmarks pin to cores 0 and 1")
    docs_results = REPO / "docs" / "performance-results.rst"
    docs_before = docs_results.stat().st_mtime_ns if docs_results.exists() else None
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--rounds", "1", "--only", "accept",
         "--duration", "0.5", "--warmup", "0.1", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "latest.json").read_text())
    rows = {row["label"]: row for row in data["rows"]}
    accept = rows["accept"]
    assert accept["workload"] == "accept"
    assert accept["rounds"] == 1
    assert accept["subject_median"] > 0 and accept["baseline_median"] > 0
    assert math.isclose(accept["ratio"], accept["subject_median"] / accept["baseline_median"])
    assert accept["target"] == "≥ 0.95×"
    assert accept["met"] in (True, False)
    assert data["machine"]["nproc"] >= 2 and data["machine"]["twisted"]
    assert "| accept |" in (tmp_path / "latest.md").read_text()
    assert "accept" in result.stdout
    # A --quick or --only run leaves the docs' results alone.
    after = docs_results.stat().st_mtime_ns if docs_results.exists() else None
    assert after == docs_before


def test_list_names_every_workload() -> None:
    result = subprocess.run([sys.executable, "-m", "bench", "--list"], cwd=REPO, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    names = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {"accept", "refuse", "echo", "http", "many-ports", "idle"} <= names
