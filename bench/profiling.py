"""
Where a twisted-sock server spends its time under a workload: py-spy (from
PyPI) attached to the server process while the workload's load runs, and a
summary of the samples (own time per function, and time inside each
twisted-sock function including what it calls).
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from bench.procs import CLIENT_CORE, BenchError, Server, pinned
from bench.workloads import Context, Workload


def _frame_name(frame: str) -> str:
    # "dataReceived (twisted/internet/tcp.py:250)" -> "dataReceived (twisted/internet/tcp.py)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def summarise(raw: str, top: int = 15) -> dict[str, Any]:
    """
    Collapsed stacks ("a;b;c 12" per line) to the top functions by own time
    and the twisted-sock functions by inclusive time.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame_name(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    sock = [(f, n) for f, n in inclusive.most_common() if "twisted_sock/" in f]
    lines = [f"{total} samples of the server busy (time waiting in epoll is not sampled)"
             if total else "no samples", "", "own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)] if total else []
    lines += ["", "inside twisted_sock (inclusive):"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in sock[:top]] if total else []
    return {
        "samples": total,
        "own": [[f, n] for f, n in own.most_common(top)],
        "twisted_sock_inclusive": [[f, n] for f, n in sock[:top]],
        "summary": "\n".join(lines),
    }


def profile(ctx: Context, workload: Workload, variant_key: str, out_dir: Path) -> dict[str, Any]:
    """
    One extra round of C{workload} against its C{variant_key} server with
    py-spy recording; the raw collapsed stacks go to C{out_dir}.
    """
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise BenchError("py-spy is not installed (pip install py-spy)")
    variant = workload.variant(variant_key)
    out_dir.mkdir(parents=True, exist_ok=True)
    raw_path = out_dir / f"profile-{workload.name}-{variant_key}.txt"
    seconds = max(1, int(ctx.duration + ctx.warmup + 0.999))
    with Server(variant.impl, variant.kind, variant.ports, loadgen=ctx.loadgen,
                log_path=out_dir / "logs" / f"profile-{workload.name}.log") as server:
        server.start()
        spy = subprocess.Popen(
            pinned(CLIENT_CORE, [py_spy, "record", "--pid", str(server.pid), "--rate", "250",
                                 "--duration", str(seconds), "--format", "raw",
                                 "-o", str(raw_path)]),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            measured = workload.measure(ctx, server, variant)
        finally:
            try:
                _, err = spy.communicate(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                spy.kill()
                _, err = spy.communicate()
    if not raw_path.exists():
        raise BenchError(f"py-spy wrote nothing: {err.decode(errors='replace').strip()}")
    result = summarise(raw_path.read_text())
    result["raw_file"] = str(raw_path)
    result["measured_under_profiler"] = {k: v for k, v in measured.items() if k != "raw"}
    return result
