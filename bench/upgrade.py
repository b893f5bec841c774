"""
The C{upgrade} row: connections attempted and failed while a real
C{twistd -n sock} is upgraded (C{twisted-sock upgrade}) under the accept
load of the C{accept} workload (the C generator's connect mode: connect,
the server closes at once). Goal: 0 failed. Also reported: connections
that took over a second (a SYN the stopping server dropped is sent again by
the client's kernel after 1 s: a restart that is quick enough fails no
connection but stalls every one in flight) and the slowest connection.

    python -m bench.upgrade                  # 3 upgrades in 12 s of load
    python -m bench.upgrade --upgrades 5 --duration 20 --docs
    python -m bench.upgrade --restart        # the same with plain restarts
    python -m bench.upgrade --workers 2      # a main process with 2 workers
    python -m bench.upgrade --workers 2 --roll   # every worker replaced instead

C{--roll} replaces every worker from a new fork server (what the
session-ticket key rotation does) by reloading a change of TLS settings
of a second socket (the load goes to the first, which has no TLS).

C{--docs} also measures plain restarts for comparison and rewrites the
C{upgrade} section at the end of C{docs/performance-results.rst} (between
its markers; a full C{python -m bench} run rewrites that file without it:
run this again afterwards).
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.build import loadgen
from bench.procs import CLIENT_CORE, SERVER_CORE, pinned

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "performance-results.rst"
BEGIN, END = ".. upgrade-row-begin", ".. upgrade-row-end"
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+) \(data\)")
UPGRADED = re.compile(r"ok: upgraded: new main process (\d+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(directory: Path, port: int = 0, workers: int = 1, tls: int = 0) -> Path:
    """
    The server's configuration file; with C{tls}, a second socket with a
    TLS port whose C{sniff_timeout} is C{tls} seconds (a change of TLS
    settings for each reload of C{--roll}).
    """
    path = directory / "sock.toml"
    second = "" if not tls else f"""
[[socket]]
name = "tls"
interfaces = "lo"
local_ports = "0"
[socket.tls]
certificate = "{directory / 'server.pem'}"
private_key = "{directory / 'server.key'}"
ports = "0"
sniff_timeout = {tls}
"""
    path.write_text(second + f"""
[sock]
workers = {workers}
admin_socket = "{directory / 'admin.sock'}"
log_connections = false
drain_timeout = 5

[[socket]]
name = "accept"
interfaces = "lo"
incoming = "any-ip-any-port"
local_ports = "{port}"
handler = "bench.handlers:CloseAtOnce"
""")
    return path


def start(bindir: Path, conf: Path, workers: int = 1) -> tuple[subprocess.Popen[str], int]:
    """
    C{twistd -n sock -c conf} on the server core; its data port once it
    listens (and, with workers, once all of them are ready).
    """
    server = subprocess.Popen(pinned(SERVER_CORE, [str(bindir / "twistd"), "-n", "--pidfile=", "sock",
                                                   "-c", str(conf)]),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                              stdin=subprocess.DEVNULL)
    assert server.stdout is not None
    port = 0
    for line in server.stdout:
        found = LISTENING.search(line)
        if found:
            port = int(found.group(1))
        if port and (workers == 1 or f"all {workers} workers ready" in line):
            threading.Thread(target=server.stdout.read, daemon=True).start()  # never a full pipe
            return server, port
    raise SystemExit("bench upgrade: the server did not start")


def measure(duration: float, upgrades: int, inflight: int, restart: bool = False,
            workers: int = 1, roll: bool = False) -> dict[str, Any]:
    """
    Run the connect load for C{duration} s and, spread over it, C{upgrades}
    upgrades (or, with C{restart}, as many plain restarts: SIGTERM, then a
    new twistd binding the port again -- the figure upgrades are for; with
    C{roll}, as many replacements of every worker).
    """
    bindir = Path(sys.executable).parent
    generator = loadgen()
    with tempfile.TemporaryDirectory(prefix="bench-upgrade-") as tmp:
        port = free_port()
        if roll:
            from twisted_sock.testing import make_pki

            make_pki(tmp)
        conf = config(Path(tmp), port, workers, tls=1 if roll else 0)
        server, port = start(bindir, conf, workers)
        load = subprocess.Popen(pinned(CLIENT_CORE, [str(generator), "connect", "-p", str(port),
                                                     "-c", str(inflight), "-d", f"{duration:g}", "-w", "0"]),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        servers = [server]
        pids: list[int] = []
        rolled = 0
        answers = []
        try:
            admin = str(Path(tmp) / "admin.sock")
            for step in range(upgrades):
                time.sleep(duration / (upgrades + 1))  # spread over the load run
                if roll:
                    config(Path(tmp), port, workers, tls=step + 2)
                    done = subprocess.run([str(bindir / "twisted-sock"), "reload", admin],
                                          capture_output=True, text=True, timeout=120)
                    answers.append(done.stdout.strip() or done.stderr.strip())
                    rolled += answers[-1].endswith("workers replaced for the new TLS settings")
                    continue
                if restart:
                    servers[-1].terminate()
                    servers[-1].wait(60)
                    servers.append(start(bindir, conf, workers)[0])
                    answers.append(f"restarted: process {servers[-1].pid}")
                    continue
                done = subprocess.run([str(bindir / "twisted-sock"), "upgrade", admin],
                                      capture_output=True, text=True, timeout=120)
                answers.append(done.stdout.strip() or done.stderr.strip())
                match = UPGRADED.search(done.stdout)
                if match:
                    pids.append(int(match.group(1)))
            out, err = load.communicate(timeout=duration + 120)
        finally:
            if load.poll() is None:
                load.kill()
            for pid in pids:
                subprocess.run(["kill", "-TERM", str(pid)], capture_output=True)
            for proc in servers:
                if proc.poll() is None:
                    proc.terminate()
                proc.wait(60)
        results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        if not results:
            raise SystemExit(f"bench upgrade: loadgen failed: {err.strip()}")
        res = results[-1]
    failed = res["reset"] + res["refused"] + res["other"] + res["timeout"]
    succeeded = len(servers) - 1 if restart else rolled if roll else len(pids)
    return {"upgrades": upgrades, "workers": workers, "succeeded": succeeded, "attempted": res["total"],
            "completed": res["completed"], "failed": failed, "rate": res["rate"],
            "slow": res["slow"], "slowest": res["max_latency"],
            "raw": res, "answers": answers}


def rst(result: dict[str, Any], duration: float, restart: dict[str, Any] | None = None) -> str:
    return "\n".join([
        BEGIN,
        "",
        "Upgrade under load",
        "~~~~~~~~~~~~~~~~~~",
        "",
        f"``python -m bench.upgrade``: {result['upgrades']} upgrades (``twisted-sock upgrade``) "
        f"of a ``twistd -n sock``{with_workers(result['workers'])} serving the ``accept`` load "
        f"for {duration:g} s "
        f"({result['succeeded']} succeeded).",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - row",
        "     - connections attempted",
        "     - failed (refused, reset, no answer)",
        "     - took over 1 s",
        "     - slowest",
        "     - goal",
        "   * - upgrade",
        f"     - {result['attempted']:,}",
        f"     - {result['failed']}",
        f"     - {result['slow']:,}",
        f"     - {result['slowest'] * 1000:,.0f} ms",
        "     - 0 failed",
        *([] if restart is None else [
            "   * - plain restart (SIGTERM, start again), for comparison",
            f"     - {restart['attempted']:,}",
            f"     - {restart['failed']:,}",
            f"     - {restart['slow']:,}",
            f"     - {restart['slowest'] * 1000:,.0f} ms",
            "     -",
        ]),
        "",
        END,
    ])


def with_workers(workers: int) -> str:
    return "" if workers == 1 else f" with ``workers = {workers}``"


def write_docs(text: str) -> None:
    current = DOCS.read_text()
    if BEGIN in current:
        head, _, rest = current.partition(BEGIN)
        tail = rest.partition(END)[2]
        current = head.rstrip("\n") + "\n\n" + text + tail
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    DOCS.write_text(current)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upgrade", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=12.0, help="seconds of load [default: 12]")
    parser.add_argument("--upgrades", type=int, default=3, help="upgrades during the load [default: 3]")
    parser.add_argument("--inflight", type=int, default=64, help="connections in flight [default: 64]")
    parser.add_argument("--workers", type=int, default=1, help="[sock] workers of the server [default: 1]")
    parser.add_argument("--docs", action="store_true", help="rewrite the row in docs/performance-results.rst")
    parser.add_argument("--restart", action="store_true",
                        help="plain restarts (SIGTERM, start again) instead of upgrades: the comparison")
    parser.add_argument("--roll", action="store_true",
                        help="replace every worker (a TLS settings reload) instead of upgrades "
                             "(--workers 2 or more)")
    args = parser.parse_args(argv)
    if args.roll and (args.workers < 2 or args.restart or args.docs):
        parser.error("--roll needs --workers 2 or more, without --restart and --docs")
    result = measure(args.duration, args.upgrades, args.inflight, args.restart, args.workers, args.roll)
    what = ("restart" if args.restart else "roll" if args.roll else "upgrade") + \
        with_workers(args.workers).replace("``", "")
    print(f"{what}: {result['upgrades']} times ({result['succeeded']} succeeded), "
          f"{result['attempted']} connections attempted, {result['failed']} failed, "
          f"{result['slow']} over 1 s, slowest {result['slowest'] * 1000:.0f} ms "
          f"({result['rate']:.0f} conn/s; goal: 0 failed)")
    for answer in result["answers"]:
        print(f"  {answer}")
    if args.docs and not args.restart:
        compared = measure(args.duration, args.upgrades, args.inflight, restart=True, workers=args.workers)
        write_docs(rst(result, args.duration, compared))
    return 0 if result["failed"] == 0 and result["succeeded"] == result["upgrades"] else 1


if __name__ == "__main__":
    sys.exit(main())
