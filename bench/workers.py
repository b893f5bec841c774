"""
The C{workers} workload: C{python -m bench.workers [--duration S] [--rounds N]}.

Runs C{twistd -n sock} with C{workers = 1} and C{workers = 2} (alternated
round by round) under the C loadgen's connect mode from 32 loopback
source addresses (one address always reaches one worker), and reports:

 - I{busy}: a handler that spends 1 ms of CPU per connection, then closes:
   connections per second with 2 workers over 1 (goal >= 1.8);
 - I{accept}: a handler that closes at once: server CPU (the main process
   and every worker) per connection with 2 workers over 1 (goal <= 1.1).

Standalone rather than in L{bench.workloads}: that runner pins the server
to one core and measures one process; workers need both cores and a
process tree. The load generator shares the two cores with the workers
(not pinned); its CPU use is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.build import loadgen
from bench.procs import cpu_seconds

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
TWISTD = str(Path(sys.executable).parent / "twistd")
SOURCES = ",".join(f"127.0.0.{n}" for n in range(2, 34))
HANDLERS = {"busy": "bench.handlers:BusyThenClose", "accept": "bench.handlers:CloseAtOnce"}
CONFIG = """
[sock]
workers = {workers}
log_connections = false

[[socket]]
name = "bench"
local_ports = [0]
interfaces = "lo"
incoming = "any-ip-any-port"
handler = "{handler}"
"""


def tree(pid: int) -> list[int]:
    """
    C{pid} and its descendants: the fork server and the workers it forked.
    """
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(p) for p in f.read().split()]
    except OSError:
        return [pid]
    return [pid, *(d for child in children for d in tree(child))]


def start(workers: int, handler: str, directory: Path) -> tuple[subprocess.Popen[str], int, list[str]]:
    conf = directory / f"w{workers}-{handler}.toml"
    conf.write_text(CONFIG.format(workers=workers, handler=HANDLERS[handler]))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([TWISTD, "-n", "--pidfile=", "sock", "--config", str(conf)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    port = None
    ready = f"all {workers} workers ready" if workers > 1 else "listening on"
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if found and port is None:
            port = int(found.group(1))
        if ready in line and port is not None:
            return proc, port, lines
    proc.kill()
    raise SystemExit("server did not start:\n" + "".join(lines[-20:]))


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)


def busy_seconds() -> tuple[float, float]:
    """
    The machine's busy and total CPU seconds so far (every core, /proc/stat).
    """
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:8]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / CLK_TCK, sum(fields) / CLK_TCK


def measure(workers: int, handler: str, duration: float, directory: Path) -> dict[str, Any]:
    proc, port, _ = start(workers, handler, directory)
    try:
        pids = tree(proc.pid)
        machine = busy_seconds()
        before = sum(cpu_seconds(p) for p in pids)
        done = subprocess.run([str(loadgen()), "connect", "-p", str(port), "-c", "64", "-d", f"{duration:g}",
                               "-w", "1", "-s", SOURCES], capture_output=True, text=True,
                              timeout=duration + 60)
        after = sum(cpu_seconds(p) for p in pids)
        machine_after = busy_seconds()
    finally:
        stop(proc)
    result = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    elapsed = result["elapsed"]
    return {
        "workers": workers, "handler": handler, "rate": result["rate"], "completed": result["total"],
        "eof_share": result["eof"] / max(1, result["completed"]),
        "server_cpu_us_per_conn": 1e6 * (after - before) / max(1, result["total"]),
        "gen_cpu_pct": 100.0 * (result["cpu_user"] + result["cpu_sys"]) / elapsed if elapsed else 0.0,
        # Cores used by everything else on the machine meanwhile (other users' load).
        "other_cores": ((machine_after[0] - machine[0]) - (after - before)
                        - (result["cpu_user"] + result["cpu_sys"])) / (duration + 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workers")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            order = [1, 2] if round_ % 2 == 0 else [2, 1]
            for handler in HANDLERS:
                for workers in order:
                    run = measure(workers, handler, args.duration, Path(tmp))
                    print(json.dumps(run), file=sys.stderr)
                    runs.setdefault((handler, workers), []).append(run)

    def med(handler: str, workers: int, key: str) -> float:
        return statistics.median(r[key] for r in runs[(handler, workers)])

    busy = med("busy", 2, "rate") / med("busy", 1, "rate")
    cpu = med("accept", 2, "server_cpu_us_per_conn") / med("accept", 1, "server_cpu_us_per_conn")
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    report = {
        "busy_rate": {w: med("busy", w, "rate") for w in (1, 2)},
        "busy_ratio": busy,
        "accept_cpu_us": {w: med("accept", w, "server_cpu_us_per_conn") for w in (1, 2)},
        "accept_rate": {w: med("accept", w, "rate") for w in (1, 2)},
        "accept_cpu_ratio": cpu,
        "generator_cpu_pct": {f"{h}/{w}": med(h, w, "gen_cpu_pct") for h, w in runs},
        "other_cores": {f"{h}/{w}": med(h, w, "other_cores") for h, w in runs},
        "loadavg_after": load, "rounds": args.rounds, "duration": args.duration, "runs": [
            r for rs in runs.values() for r in rs],
    }
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "workers.json").write_text(json.dumps(report, indent=2))
    print(f"busy handler (1 ms CPU/conn): {report['busy_rate'][1]:.0f} conn/s with 1 worker, "
          f"{report['busy_rate'][2]:.0f} with 2: {busy:.2f}x (goal >= 1.8)")
    print(f"plain accept: {report['accept_cpu_us'][1]:.0f} us server CPU/conn with 1 process, "
          f"{report['accept_cpu_us'][2]:.0f} with 2 workers: {cpu:.2f}x (goal <= 1.1)")
    others = statistics.median(report["other_cores"].values())
    print(f"other load on the machine meanwhile: {others:.2f} cores (median); "
          f"load average after the run: {' '.join(load)}")


if __name__ == "__main__":
    main()
