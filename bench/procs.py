"""
Processes: the server under test (pinned to core 0), the load generators
(pinned to core 1), and what /proc says about them.
"""

from __future__ import annotations

import json
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.servers import TLS_KINDS, pki_files, write_pki

REPO = Path(__file__).resolve().parent.parent
#: The servers' working directory: one without a twisted_sock package.
NEUTRAL_DIR = REPO / "bench" / "_build" / "run"
SERVER_CORE = "0"
CLIENT_CORE = "1"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
#: The C server's kind for each server kind (C{tls}: bench/tlsgen.c's server).
C_KINDS = {"accept": "accept", "refuse": "reset", "echo": "echo", "http": "http", "idle": "echo",
           "udp-echo": "udp-echo", "tls": "tls"}
_pki_dir: Path | None = None


class BenchError(Exception):
    """
    A run that could not be measured (a server that did not start, a
    generator that failed). Reported, never hidden.
    """


def pinned(core: str, argv: list[str]) -> list[str]:
    taskset = shutil.which("taskset")
    if taskset is None:
        raise BenchError("taskset is not installed (Debian package util-linux)")
    return [taskset, "-c", core, *argv]


def cpu_seconds(pid: int) -> float:
    """
    CPU time (user + system) of a process so far: from /proc/PID/schedstat
    (nanoseconds) when the kernel has it, else /proc/PID/stat (ticks).
    """
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    return stat_cpu_seconds(pid)


def stat_cpu_seconds(pid: int) -> float:
    """
    CPU time (utime + stime) of a process so far from /proc/PID/stat, in
    ticks (1/CLK_TCK s) turned into seconds.
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def pki() -> Path:
    """
    The run's throw-away PKI (CA, ECDSA P-256 and RSA 2048 server
    certificates and keys: L{bench.servers.write_pki}), made once per runner
    process in bench/_build/ and removed when the runner exits. Every TLS
    server of the run (twisted-sock, bare, C) of a kind uses the same
    certificate and key.
    """
    global _pki_dir
    if _pki_dir is None:
        import atexit
        import tempfile

        NEUTRAL_DIR.parent.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix="pki-", dir=NEUTRAL_DIR.parent))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        write_pki(str(directory))
        _pki_dir = directory
    return _pki_dir


def status_kib(pid: int, key: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise BenchError(f"no {key} in /proc/{pid}/status")


def core_times() -> dict[str, list[int]]:
    """
    The per-core counters of /proc/stat (user nice system idle iowait irq
    softirq steal), in ticks.
    """
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *values = line.split()
                out[name] = [int(v) for v in values[:8]]
    return out


def core_usage(before: dict[str, list[int]], after: dict[str, list[int]], core: str) -> dict[str, float]:
    """
    What core C{core} did between two L{core_times} snapshots, in percent of
    the time: busy (user, system, irq, softirq: the kernel's packet work
    included), idle, and steal (taken by the hypervisor).
    """
    key = f"cpu{core}"
    if key not in before or key not in after:
        return {}
    d = [b - a for a, b in zip(before[key], after[key], strict=True)]
    total = sum(d)
    if total <= 0:
        return {}
    user, nice, system, idle, iowait, irq, softirq, steal = d
    return {
        "busy": 100.0 * (user + nice + system + irq + softirq) / total,
        "softirq": 100.0 * softirq / total,
        "idle": 100.0 * (idle + iowait) / total,
        "steal": 100.0 * steal / total,
    }


def udp_drops(port: int, address: str = "127.0.0.1") -> int | None:
    """
    The kernel's drop counter of the IPv4 UDP socket bound to C{address}
    and C{port} (/proc/net/udp, column "drops": receive-buffer overflows
    and datagrams a socket filter dropped), or C{None} if there is none.
    """
    local = f"{int.from_bytes(socket.inet_aton(address), 'little'):08X}:{port:04X}"
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) >= 13 and fields[1] == local:
                    return int(fields[12])
    except (OSError, ValueError, StopIteration):
        return None
    return None


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Server:
    """
    One benchmark server process (C{python -m bench.servers IMPL KIND}),
    started pinned to the server core; C{info} is the JSON line it printed.
    """

    impl: str
    kind: str
    ports: int = 1
    log_path: Path | None = None
    loadgen: Path | None = None
    max_seconds: float = 900.0
    info: dict[str, Any] = field(default_factory=dict)
    ready_seconds: float = 0.0
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Server:
        env = dict(os.environ)
        if self.kind in TLS_KINDS:
            env["BENCH_PKI"] = str(pki())
        if self.impl == "c" and self.kind in TLS_KINDS:
            from bench.build import tlsgen

            cert, key = pki_files(str(pki()), TLS_KINDS[self.kind].certificate)
            argv = [str(tlsgen()), "serve", "-C", cert, "-K", key, "-t", str(int(self.max_seconds))]
        elif self.impl == "c":
            # The generator's own minimal C server (the ceiling of what the
            # generator can drive).
            if self.loadgen is None:
                raise BenchError("the C server needs the compiled loadgen")
            argv = [str(self.loadgen), "serve", "-k", C_KINDS[self.kind], "-t", str(int(self.max_seconds))]
        else:
            argv = [sys.executable, "-m", "bench.servers", self.impl, self.kind,
                    "--ports", str(self.ports), "--max-seconds", str(self.max_seconds)]
        # bench from this checkout; twisted_sock from it too, unless
        # BENCH_SOCK_TREE names another tree (python -m bench --tree).
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [os.environ.get("BENCH_SOCK_TREE"), str(REPO), env.get("PYTHONPATH")]))
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "wb")
        # Not cwd=REPO: "python -m" puts the working directory first on
        # sys.path, ahead of PYTHONPATH, and REPO holds a twisted_sock too.
        NEUTRAL_DIR.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            pinned(SERVER_CORE, argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log if self._log is not None else subprocess.DEVNULL, cwd=NEUTRAL_DIR, env=env,
        )
        assert self.proc.stdout is not None
        line = _readline(self.proc.stdout, timeout)
        self.ready_seconds = time.perf_counter() - t0
        if not line:
            code = self.proc.poll()
            self.stop()
            raise BenchError(f"server {self.impl} {self.kind} did not start (exit status {code}); "
                             f"see {self.log_path}")
        self.info = json.loads(line)
        tree = os.environ.get("BENCH_SOCK_TREE")
        module = self.info.get("twisted_sock_file")
        if tree and module and not module.startswith(tree + os.sep):
            self.stop()
            raise BenchError(f"server imported twisted_sock from {module}, not from {tree}")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def port(self) -> int:
        return int(self.info["port"])

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        return status_kib(self.pid, "VmRSS")

    def fds(self) -> int:
        return fd_count(self.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_process(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """
    End a child we started: close its stdin, SIGTERM, then SIGKILL.
    """
    try:
        if proc.stdin is not None:
            proc.stdin.close()
    except OSError:
        pass
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _readline(stream: IO[bytes], timeout: float) -> bytes:
    """
    One line from a child's stdout, or b"" after C{timeout} seconds or EOF.
    """
    fd = stream.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return b""
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return b""
        chunk = os.read(fd, 65536)
        if not chunk:
            return b""
        buf += chunk
    return buf.split(b"\n", 1)[0]


@dataclass
class GeneratorRun:
    """
    A finished load generator: its stdout, exit status, wall time and CPU
    time (from the kernel's accounting of waited-for children).
    """

    argv: list[str]
    stdout: str
    stderr: str
    returncode: int
    wall: float
    cpu: float

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.cpu / self.wall if self.wall > 0 else 0.0

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]


def run_generator(argv: list[str], timeout: float) -> GeneratorRun:
    """
    Run a load generator pinned to the client core and wait for it (killed
    after C{timeout} seconds at most).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(pinned(CLIENT_CORE, argv), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise BenchError(f"{Path(argv[0]).name} did not finish in {timeout:.0f} s") from None
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return GeneratorRun(argv, out.decode(errors="replace"), err.decode(errors="replace"),
                        proc.returncode, wall, cpu)


class HeldGenerator:
    """
    A generator that keeps running while the runner measures (the idle
    workload): started pinned, read line by line, ended by closing its stdin.
    """

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(pinned(CLIENT_CORE, argv), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def read_json(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = _readline(self.proc.stdout, timeout)
        if not line:
            raise BenchError(f"{Path(self.argv[0]).name} printed nothing in {timeout:.0f} s")
        return json.loads(line)  # type: ignore[no-any-return]

    def finish(self, timeout: float = 30.0) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.stdin = None  # communicate() must not touch it again
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise BenchError("held generator did not end") from None
        lines = [json.loads(x) for x in out.decode().splitlines() if x.startswith("{")]
        return lines[-1] if lines else {}

    def kill(self) -> None:
        if self.proc.poll() is None:
            stop_process(self.proc, grace=2.0)
