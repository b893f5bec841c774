"""
The workload registry. A workload is a few declarations:

* its I{variants}: which server processes it measures (implementation,
  kind of server, number of ports), alternated round by round;
* a I{measure} function that puts load on one running server and returns
  its metrics (plus the generator's and the server's CPU use, and any
  problem seen);
* its I{rows}: which metric of which variant is compared with which
  baseline, and the target.

Adding one is a L{register} call with those three things; the runner, the
tables and the JSON pick it up by name.
"""

from __future__ import annotations

import math
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import (
    CLIENT_CORE,
    SERVER_CORE,
    BenchError,
    HeldGenerator,
    Server,
    core_times,
    core_usage,
    run_generator,
    stat_cpu_seconds,
    udp_drops,
)
from bench.servers import TLS_KINDS

# Declarations ---------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """
    One server a workload measures. C{key} names it in rows and results.
    C{expect} is the outcome every client of a connect workload must see
    (C{"eof"}: accepted then closed, C{"reset"}: refused).
    """

    key: str
    impl: str
    kind: str
    ports: int = 1
    expect: str = ""
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or self.key


@dataclass(frozen=True)
class Target:
    """
    A target on the ratio subject/baseline (C{on="ratio"}) or on the
    subject's own median (C{on="value"}).
    """

    op: str  # ">=" or "<="
    value: float
    on: str = "ratio"
    unit: str = ""

    def met(self, value: float | None, ratio: float | None) -> bool | None:
        x = ratio if self.on == "ratio" else value
        if x is None or math.isnan(x):
            return None
        return x >= self.value if self.op == ">=" else x <= self.value

    def text(self) -> str:
        sign = "≥" if self.op == ">=" else "≤"
        if self.on == "ratio":
            return f"{sign} {self.value:.3g}×"
        return f"{sign} {self.value:.3g}{(' ' + self.unit) if self.unit else ''}"


@dataclass(frozen=True)
class Row:
    """
    One line of the results table: C{metric} of variant C{subject} against
    the same metric of variant C{baseline}.
    """

    label: str
    metric: str
    unit: str
    subject: str = "twisted-sock"
    baseline: str | None = "bare"
    target: Target | None = None
    note: str = ""


@dataclass(frozen=True)
class Context:
    """
    What a measure function needs: the tools and the run's settings.
    """

    loadgen: Path
    wrk: str | None
    duration: float
    warmup: float
    #: bench/tlsgen.c compiled, or None (and why not) when it does not build.
    tlsgen: Path | None = None
    tlsgen_error: str = ""
    connect_inflight: int = 64
    echo_connections: int = 50
    echo_bytes: int = 4096
    http_connections: int = 50
    idle_connections: int = 10000
    many_ports: int = 1000
    tls_inflight: int = 32
    udp_outstanding: int = 64
    udp_bytes: int = 64


Measurement = dict[str, Any]
Measure = Callable[[Context, Server, Variant], Measurement]


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    generator: str
    description: str
    variants: tuple[Variant, ...]
    measure: Measure
    rows: tuple[Row, ...]
    needs: tuple[str, ...] = field(default=())
    #: A fresh server process for every (round, variant) instead of
    #: interleaved slices against long-lived servers (start-up and memory
    #: are measured on a new process).
    fresh_servers: bool = False
    #: The variant C{--profile} runs under py-spy.
    profile_variant: str = "twisted-sock"

    def variant(self, key: str) -> Variant:
        for v in self.variants:
            if v.key == key:
                return v
        raise KeyError(key)


REGISTRY: dict[str, Workload] = {}


def register(workload: Workload) -> Workload:
    names = {v.key for v in workload.variants}
    if workload.profile_variant not in names:
        raise ValueError(f"workload {workload.name}: no variant {workload.profile_variant!r} to profile")
    for row in workload.rows:
        if row.subject not in names or (row.baseline is not None and row.baseline not in names):
            raise ValueError(f"workload {workload.name}: row {row.label!r} names an unknown variant")
    REGISTRY[workload.name] = workload
    return workload


# Measure functions ----------------------------------------------------------


class Window:
    """
    What the server process and both cores did while a generator ran: the
    server's CPU time, and each core's busy / idle / steal share.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.cpu0 = server.cpu()
        self.cores0 = core_times()
        self.t0 = time.perf_counter()

    def close(self, operations: int | None) -> dict[str, Any]:
        wall = time.perf_counter() - self.t0
        cpu = self.server.cpu() - self.cpu0
        cores1 = core_times()
        srv = core_usage(self.cores0, cores1, SERVER_CORE)
        gen = core_usage(self.cores0, cores1, CLIENT_CORE)
        return {
            "srv_cpu_pct": 100.0 * cpu / wall if wall > 0 else 0.0,
            "srv_us_per_op": 1e6 * cpu / operations if operations else None,
            "server_core_busy_pct": srv.get("busy"),
            "server_core_steal_pct": srv.get("steal"),
            "gen_core_busy_pct": gen.get("busy"),
            "gen_core_idle_pct": gen.get("idle"),
            "gen_core_steal_pct": gen.get("steal"),
        }


def measure_connect(ctx: Context, server: Server, variant: Variant) -> Measurement:
    """
    The C generator's connect mode: connections opened and ended by the
    server, C{connect_inflight} at a time, spread over every port the
    server opened. Checks that (nearly) every client saw the expected end.
    """
    nports = int(server.info.get("port_count", 1))
    if nports > 1 and not server.info.get("contiguous"):
        raise BenchError("the server's ports are not one block")
    window = Window(server)
    run = run_generator(
        [str(ctx.loadgen), "connect", "-p", str(server.port), "-P", str(nports),
         "-c", str(ctx.connect_inflight), "-d", f"{ctx.duration:g}", "-w", f"{ctx.warmup:g}"],
        timeout=ctx.duration + ctx.warmup + 60,
    )
    if run.returncode != 0 or not run.json_lines():
        raise BenchError(f"loadgen connect failed ({run.returncode}): {run.stderr.strip()}")
    res = run.json_lines()[-1]
    usage = window.close(res["total"])
    done = res["completed"]
    problems = []
    if done == 0:
        raise BenchError(f"no connection completed: {res}")
    share = 100.0 * res[variant.expect] / done if variant.expect else None
    if share is not None and share < 99.9:
        problems.append(f"only {share:.3f}% of clients saw {variant.expect} "
                        f"(eof {res['eof']}, reset {res['reset']}, refused {res['refused']}, "
                        f"other {res['other']}, errno {res['last_errno']})")
    if res["timeout"]:
        problems.append(f"{res['timeout']} connections had no outcome within 5 s")
    elapsed = res["elapsed"]
    return {
        "rate": res["rate"],
        "expected_share": share,
        "completed": done,
        "slow_over_1s": res["slow"],
        "max_latency_ms": 1000 * res["max_latency"],
        "mean_latency_ms": 1000 * res["mean_latency"],
        "timeouts": res["timeout"],
        "ports": nports,
        "listeners": server.info.get("listeners"),
        "ready_seconds": server.ready_seconds,
        "listen_seconds": server.info.get("start_seconds"),
        "gen_cpu_pct": 100.0 * (res["cpu_user"] + res["cpu_sys"]) / elapsed if elapsed else 0.0,
        **usage,
        "problems": problems,
        "raw": res,
    }


def measure_echo(ctx: Context, server: Server, variant: Variant) -> Measurement:
    """
    The C generator's echo mode: C{echo_connections} connections, each
    sending a C{echo_bytes} message and waiting for all of it to come back.
    """
    window = Window(server)
    run = run_generator(
        [str(ctx.loadgen), "echo", "-p", str(server.port), "-c", str(ctx.echo_connections),
         "-m", str(ctx.echo_bytes), "-d", f"{ctx.duration:g}", "-w", f"{ctx.warmup:g}"],
        timeout=ctx.duration + ctx.warmup + 60,
    )
    lines = run.json_lines()
    if not lines:
        raise BenchError(f"loadgen echo failed ({run.returncode}): {run.stderr.strip()}")
    res = lines[-1]
    usage = window.close(res["total"])
    problems = []
    if res["errors"] or res["mismatches"]:
        problems.append(f"{res['errors']} connections failed (errno {res['last_errno']}), "
                        f"{res['mismatches']} bad echoes")
    elapsed = res["elapsed"]
    return {
        "rate": res["rate"],
        "mb_s": res["mb_per_s"],
        "messages": res["messages"],
        "gen_cpu_pct": 100.0 * (res["cpu_user"] + res["cpu_sys"]) / elapsed if elapsed else 0.0,
        **usage,
        "problems": problems,
        "raw": res,
    }


_WRK_REQUESTS = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)")
_WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def measure_http(ctx: Context, server: Server, variant: Variant) -> Measurement:
    """
    C{wrk -t1 -c50} against the server's http port.
    """
    if ctx.wrk is None:
        raise BenchError("wrk is not installed (Debian package wrk)")
    seconds = max(1, math.ceil(ctx.duration))
    url = f"http://127.0.0.1:{server.port}/"
    if ctx.warmup >= 0.5:  # wrk counts whole seconds: warm up only on full runs
        run_generator([ctx.wrk, "-t1", f"-c{ctx.http_connections}", "-d1s", url], timeout=60)
    window = Window(server)
    run = run_generator([ctx.wrk, "-t1", f"-c{ctx.http_connections}", f"-d{seconds}s",
                         "--timeout", "5s", url], timeout=seconds + 60)
    requests = _WRK_REQUESTS.search(run.stdout)
    usage = window.close(int(requests.group(1)) if requests else None)
    rate = _WRK_RATE.search(run.stdout)
    if run.returncode != 0 or rate is None:
        raise BenchError(f"wrk failed ({run.returncode}): {run.stdout} {run.stderr}")
    problems = []
    errors = _WRK_SOCKET_ERRORS.search(run.stdout)
    if errors and any(int(x) for x in errors.groups()):
        problems.append(f"wrk: {errors.group(0)}")
    non2xx = _WRK_NON2XX.search(run.stdout)
    if non2xx and int(non2xx.group(1)):
        problems.append(f"wrk: {non2xx.group(0)}")
    return {
        "rate": float(rate.group(1)),
        "requests": int(requests.group(1)) if requests else None,
        "gen_cpu_pct": run.cpu_percent,
        **usage,
        "problems": problems,
        "raw": run.stdout,
    }


def _gen_cpu_pct(res: dict[str, Any]) -> float:
    elapsed = res["elapsed"]
    return 100.0 * (res["cpu_user"] + res["cpu_sys"]) / elapsed if elapsed else 0.0


def measure_tls(ctx: Context, server: Server, variant: Variant) -> Measurement:
    """
    The TLS generator (bench/tlsgen.c): C{tls_inflight} new TLS connections
    at a time, each a full handshake (for the C{-resume} kinds: a resumed
    one; C{tls12-}: TLS 1.2 at most), one byte echoed, close_notify both
    ways and the server's FIN. Checks that (nearly) every one went so.
    """
    if ctx.tlsgen is None:
        raise BenchError(f"no TLS generator: {ctx.tlsgen_error}")
    tls = TLS_KINDS[variant.kind]
    resume = tls.resume
    window = Window(server)
    run = run_generator(
        [str(ctx.tlsgen), "connect", "-p", str(server.port), "-c", str(ctx.tls_inflight),
         "-d", f"{ctx.duration:g}", "-w", f"{ctx.warmup:g}", *(["-r"] if resume else []),
         *(["-2"] if tls.tls12 else [])],
        timeout=ctx.duration + ctx.warmup + 60,
    )
    lines = run.json_lines()
    if run.returncode != 0 or not lines:
        raise BenchError(f"tlsgen connect failed ({run.returncode}): {run.stderr.strip()}")
    res = lines[-1]
    usage = window.close(res["total"])
    done = res["completed"]
    if done == 0:
        raise BenchError(f"no TLS connection completed: {res}")
    share = 100.0 * res["ok"] / done
    problems = []
    if share < 99.9:
        problems.append(f"only {share:.3f}% of TLS connections went as expected (bad echo {res['bad_echo']}, "
                        f"handshake failed {res['handshake_failed']}, reset {res['reset']}, "
                        f"refused {res['refused']}, other {res['other']}, errno {res['last_errno']})")
    if res["timeout"]:
        problems.append(f"{res['timeout']} TLS connections had no outcome within 5 s")
    # The first connections of a run offer no session yet: the share is of
    # those that offered one.
    resumed_share = 100.0 * res.get("resumed", 0) / max(res.get("offered", 0), 1)
    if resume and resumed_share < 99.0:
        problems.append(f"only {resumed_share:.1f}% of the TLS connections offering a session were "
                        "resumed")
    gen_cpu = _gen_cpu_pct(res)
    if gen_cpu >= 90 and variant.impl != "c":
        problems.append(f"the generator used {gen_cpu:.0f}% of its core: the rate may be the generator's "
                        "(the CPU-per-handshake row is not affected)")
    return {
        "rate": res["rate"],
        "ok_share": share,
        "completed": done,
        "tls": f"{res['version']} {res['cipher']} {res['group']}",
        "tls_library": res["library"],
        "resumed_share": resumed_share,
        "max_latency_ms": 1000 * res["max_latency"],
        "mean_latency_ms": 1000 * res["mean_latency"],
        "timeouts": res["timeout"],
        "gen_cpu_pct": gen_cpu,
        **usage,
        "problems": problems,
        "raw": res,
    }


def measure_udp_echo(ctx: Context, server: Server, variant: Variant) -> Measurement:
    """
    The C generator's udp-echo mode: C{udp_outstanding} datagrams of
    C{udp_bytes} in flight, each echo checked and answered by the next.
    """
    window = Window(server)
    run = run_generator(
        [str(ctx.loadgen), "udp-echo", "-p", str(server.port), "-c", str(ctx.udp_outstanding),
         "-m", str(ctx.udp_bytes), "-d", f"{ctx.duration:g}", "-w", f"{ctx.warmup:g}"],
        timeout=ctx.duration + ctx.warmup + 60,
    )
    lines = run.json_lines()
    if run.returncode != 0 or not lines:
        raise BenchError(f"loadgen udp-echo failed ({run.returncode}): {run.stderr.strip()}")
    res = lines[-1]
    usage = window.close(res["total"])
    if res["messages"] == 0:
        raise BenchError(f"no datagram came back: {res}")
    problems = []
    if res["errors"] or res["mismatches"]:
        problems.append(f"{res['errors']} send/receive errors (errno {res['last_errno']}), "
                        f"{res['mismatches']} bad echoes")
    if res["lost"] > res["messages"] / 1000:
        problems.append(f"{res['lost']} datagrams lost (no echo within 1 s)")
    return {
        "rate": res["rate"],
        "messages": res["messages"],
        "lost": res["lost"],
        "mean_rtt_ms": res["mean_rtt_ms"],
        "gen_cpu_pct": _gen_cpu_pct(res),
        **usage,
        "problems": problems,
        "raw": res,
    }


def measure_udp_flood(ctx: Context, server: Server, variant: Variant) -> Measurement:
    """
    The C generator's udp-flood mode: C{udp_bytes} datagrams from 127.0.0.1
    as fast as it can send them, all refused by the server's policy. The
    figure is the server's CPU time (utime + stime from /proc/PID/stat)
    per million datagrams sent; the kernel's drop counter of the server's
    socket (/proc/net/udp) tells how many never reached Python (dropped by
    the prefilter, or by a full receive buffer when Python fell behind).
    """
    drops0 = udp_drops(server.port)
    cpu0 = stat_cpu_seconds(server.pid)
    window = Window(server)
    run = run_generator(
        [str(ctx.loadgen), "udp-flood", "-p", str(server.port), "-m", str(ctx.udp_bytes),
         "-d", f"{ctx.duration:g}", "-w", f"{ctx.warmup:g}"],
        timeout=ctx.duration + ctx.warmup + 60,
    )
    lines = run.json_lines()
    if run.returncode != 0 or not lines:
        raise BenchError(f"loadgen udp-flood failed ({run.returncode}): {run.stderr.strip()}")
    res = lines[-1]
    sent = res["total"]
    usage = window.close(sent)
    cpu = stat_cpu_seconds(server.pid) - cpu0
    drops1 = udp_drops(server.port)
    if sent == 0:
        raise BenchError(f"no datagram sent: {res}")
    dropped = drops1 - drops0 if drops0 is not None and drops1 is not None else None
    read = sent - dropped if dropped is not None else None
    problems = []
    if res["errors"]:
        problems.append(f"{res['errors']} send errors (errno {res['last_errno']})")
    if dropped is None:
        problems.append(f"no UDP socket on 127.0.0.1:{server.port} in /proc/net/udp")
    if server.info.get("prefilter") and dropped is not None and dropped < 0.999 * sent:
        problems.append(f"the kernel dropped only {dropped} of {sent} datagrams with the prefilter on")
    return {
        "rate": res["rate"],
        "sent": sent,
        "srv_cpu_s_per_m": 1e6 * cpu / sent,
        "kernel_drop_pct": 100.0 * dropped / sent if dropped is not None else None,
        "python_read": read,
        "srv_us_per_read": 1e6 * cpu / read if read and read >= 1000 else None,
        "gen_cpu_pct": _gen_cpu_pct(res),
        **usage,
        "problems": problems,
        "raw": res,
    }


IDLE_SOURCES = "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4"


def measure_idle(ctx: Context, server: Server, variant: Variant) -> Measurement:
    """
    Open C{idle_connections} silent connections and hold them; the server's
    RSS (/proc/PID/status VmRSS) before and once it has accepted them all.
    """
    n = ctx.idle_connections
    time.sleep(0.2)
    rss0, fds0 = server.rss_kib(), server.fds()
    gen = HeldGenerator([str(ctx.loadgen), "idle", "-p", str(server.port), "-n", str(n),
                         "-c", "256", "-t", "300", "-s", IDLE_SOURCES])
    try:
        t0 = time.perf_counter()
        ready = gen.read_json(timeout=120)
        if ready.get("connected") != n:
            raise BenchError(f"loadgen idle connected {ready.get('connected')} of {n}: {ready}")
        deadline = time.monotonic() + 60
        while server.fds() < fds0 + n:
            if time.monotonic() > deadline:
                raise BenchError(f"server holds {server.fds() - fds0} of {n} connections after 60 s")
            time.sleep(0.05)
        accept_seconds = time.perf_counter() - t0
        time.sleep(0.5)
        rss1, fds1 = server.rss_kib(), server.fds()
        done = gen.finish()
    finally:
        gen.kill()
    problems = []
    if done.get("lost"):
        problems.append(f"{done['lost']} held connections were closed by the server")
    return {
        "bytes_per_conn": (rss1 - rss0) * 1024 / n,
        "rss_before_mib": rss0 / 1024,
        "rss_after_mib": rss1 / 1024,
        "connections": fds1 - fds0,
        "accept_seconds": accept_seconds,
        "problems": problems,
        "raw": {"ready": ready, "done": done},
    }


# The workloads --------------------------------------------------------------

C_CONNECT = "C loadgen (connect mode)"
#: Server CPU time per operation: the server process's own time (from
#: /proc/PID/schedstat) over every operation the generator completed.
COST = "µs"
#: A throughput target restated on server CPU per operation: a rate ratio
#: of at least 0.95 is a cost ratio of at most 1 / 0.95 when the server is
#: the bottleneck. Unlike the rate, the cost does not depend on whether the
#: generator or the machine (other load, steal) held the rate down.
SAME_COST = Target("<=", 1 / 0.95)
CPU_NOTE = "CPU-normalised form of the same target"
def full_variants(kind: str) -> tuple[Variant, Variant]:
    """
    The full-handshake servers of a resumption workload (SPEC section 8:
    resumed handshakes >= 3 x full ones per second), interleaved with the
    resumed ones in the same round: C{kind} is C{tls}, or C{tls-rsa} for
    the RSA certificate. L{resumed_over_full} compares their server CPU
    per handshake: handshakes per CPU-second, resumed over full.
    """
    return (Variant("twisted-sock-full", "twisted-sock", kind, label="twisted-sock, full handshakes"),
            Variant("bare-full", "bare", kind, label="bare, full handshakes"))


RESUME_NOTE = "server CPU per full TLS 1.3 handshake over per resumed one, same run"


def resumed_over_full(name: str) -> tuple[Row, Row]:
    return (Row(f"{name}: resumed over full (twisted-sock)", "srv_us_per_op", COST,
                subject="twisted-sock-full", baseline="twisted-sock", target=Target(">=", 3.0),
                note=RESUME_NOTE),
            Row(f"{name}: resumed over full (bare)", "srv_us_per_op", COST, subject="bare-full",
                baseline="bare", note=RESUME_NOTE))


def ceiling(kind: str) -> Variant:
    """
    The generator against its own minimal C server doing the same work:
    how fast the generator can go. Not a row; it backs the claim that the
    generator is not what limits the Python servers.
    """
    return Variant("c-ceiling", "c", kind, expect={"accept": "eof", "refuse": "reset"}.get(kind, ""),
                   label="C server (generator ceiling)")


#: The note of the rows about twisted-sock's connection log.
LOGS_NOTE = ("log_connections = true (one log line per connection, through twisted-sock's own log "
             "observer, as under twistd sock) against bare accept")


register(Workload(
    name="accept",
    title="accept: connect, server closes",
    generator=C_CONNECT,
    description="Each connection is accepted and closed at once by the server (a protocol calling "
                "transport.loseConnection() in connectionMade); 64 connects in flight; any-ip-any-port "
                "mode. Both servers listen with backlog 1024 (twisted-sock's default; passed to the "
                "bare listenTCP, whose default is 50). twisted-sock runs with log_connections=False "
                "(bare Twisted logs nothing per connection); a third server, twisted-sock with "
                "log_connections=True logging to its log file through twisted-sock's own observer "
                "(what twistd sock installs), shows what the per-connection log line costs.",
    variants=(
        Variant("twisted-sock", "twisted-sock", "accept", expect="eof"),
        Variant("bare", "bare", "accept", expect="eof", label="bare Twisted"),
        Variant("sock-logs", "twisted-sock", "accept-logs", expect="eof",
                label="twisted-sock + connection logs"),
        ceiling("accept"),
    ),
    measure=measure_connect,
    rows=(
        Row("accept", "rate", "conn/s", target=Target(">=", 0.95)),
        Row("accept: server CPU per connection", "srv_us_per_op", COST, target=SAME_COST, note=CPU_NOTE),
        Row("accept + connection logs", "rate", "conn/s", subject="sock-logs", target=Target(">=", 0.8),
            note=LOGS_NOTE),
        Row("accept + connection logs: server CPU per connection", "srv_us_per_op", COST,
            subject="sock-logs", target=Target("<=", 1.25), note=LOGS_NOTE),
    ),
))

register(Workload(
    name="refuse",
    title="refuse: connect, refused by mode",
    generator=C_CONNECT,
    description="twisted-sock in specific-ip-any-port mode with target_ip 127.0.0.9, clients connect "
                "from 127.0.0.1: every connection is reset in the accept loop. Compared with bare "
                "Twisted's accept-and-close rate measured in the same rounds (bare Twisted has no "
                "equivalent of a refusal without protocol or transport).",
    variants=(
        Variant("twisted-sock", "twisted-sock", "refuse", expect="reset"),
        Variant("bare-accept", "bare", "accept", expect="eof", label="bare Twisted accept"),
        ceiling("refuse"),
    ),
    measure=measure_connect,
    rows=(
        Row("refuse", "rate", "conn/s", baseline="bare-accept", target=Target(">=", 2.0),
            note="baseline: bare Twisted accept+close"),
        Row("refuse: clients that saw RST", "expected_share", "%", baseline=None,
            target=Target(">=", 99.9, on="value", unit="%")),
        Row("refuse: server CPU per connection", "srv_us_per_op", COST, baseline="bare-accept",
            target=Target("<=", 0.5), note=CPU_NOTE),
    ),
))

register(Workload(
    name="echo",
    title="echo: 50 connections, 4 KiB messages",
    generator="C loadgen (echo mode)",
    description="50 connections, each sending a 4096-byte message and waiting for the whole echo "
                "before the next (request/response).",
    variants=(
        Variant("twisted-sock", "twisted-sock", "echo"),
        Variant("bare", "bare", "echo", label="bare Twisted"),
        ceiling("echo"),
    ),
    measure=measure_echo,
    rows=(
        Row("echo", "rate", "msg/s", target=Target(">=", 0.95)),
        Row("echo", "mb_s", "MB/s", target=Target(">=", 0.95), note="payload each way"),
        Row("echo: server CPU per message", "srv_us_per_op", COST, target=SAME_COST, note=CPU_NOTE),
    ),
))

register(Workload(
    name="http",
    title="http: wrk -c50, tiny resource",
    generator="wrk -t1 -c50",
    description="twisted.web Site serving a 6-byte leaf resource on an http port; bare Twisted: "
                "the same Site on listenTCP (backlog 1024). Keep-alive, one wrk thread.",
    variants=(
        Variant("twisted-sock", "twisted-sock", "http"),
        Variant("bare", "bare", "http", label="bare Site"),
        ceiling("http"),
    ),
    measure=measure_http,
    rows=(
        Row("http", "rate", "req/s", target=Target(">=", 0.95)),
        Row("http: server CPU per request", "srv_us_per_op", COST, target=SAME_COST, note=CPU_NOTE),
    ),
    needs=("wrk",),
))

register(Workload(
    name="many-ports",
    title="many ports: 1000 data ports × loopback",
    generator=C_CONNECT,
    description="One socket with 1000 data ports on interface lo (127.0.0.1 and ::1: 2000 listeners). "
                "Start-up is spawn-to-listening of the whole process (interpreter start included); "
                "the accept load spreads connects round-robin over the 1000 IPv4 ports. Baselines: "
                "bare Twisted opening the same 2000 listeners (start-up) and twisted-sock on one "
                "port (accept rate); bare Twisted on 1 and 1000 ports shows what Twisted itself "
                "loses when accepts are spread over many listeners.",
    variants=(
        Variant("twisted-sock", "twisted-sock", "accept", ports=1000, expect="eof"),
        Variant("bare", "bare", "accept", ports=1000, expect="eof", label="bare Twisted"),
        Variant("sock-1port", "twisted-sock", "accept", expect="eof", label="twisted-sock, 1 port"),
        Variant("bare-1port", "bare", "accept", expect="eof", label="bare Twisted, 1 port"),
    ),
    measure=measure_connect,
    fresh_servers=True,
    rows=(
        Row("many-ports: start-up", "ready_seconds", "s", target=Target("<=", 2.0, on="value", unit="s"),
            note="spawn to listening"),
        Row("many-ports: listen()", "listen_seconds", "s", note="startService() alone"),
        Row("many-ports: accept", "rate", "conn/s", baseline="sock-1port", target=Target(">=", 0.9),
            note="baseline: twisted-sock on 1 port"),
        Row("many-ports: accept vs bare", "rate", "conn/s", note="both on 1000 ports"),
        Row("many-ports: bare Twisted accept", "rate", "conn/s", subject="bare", baseline="bare-1port",
            note="bare Twisted, 1000 ports against 1 port"),
    ),
))

register(Workload(
    name="idle",
    title="idle connections: 10 000",
    generator="C loadgen (idle mode)",
    description="10 000 silent connections held open (from 127.0.0.1-4); server RSS growth divided by "
                "the number of connections.",
    variants=(
        Variant("twisted-sock", "twisted-sock", "idle"),
        Variant("bare", "bare", "idle", label="bare Twisted"),
    ),
    measure=measure_idle,
    fresh_servers=True,
    rows=(Row("idle", "bytes_per_conn", "B/conn", target=Target("<=", 1.2)),),
))

register(Workload(
    name="tls",
    title="tls: new TLS connections (ECDSA P-256)",
    generator="C tlsgen (BoringSSL or libssl), 32 in flight",
    description="Every connection a full TLS handshake (TLS 1.3 as negotiated, no resumption, no ALPN, "
                "no SNI) with an ECDSA P-256 certificate from twisted_sock.testing.make_pki, then the "
                "client sends one byte, the server echoes it and closes (close_notify, answered, then "
                "FIN). twisted-sock: an implicit-TLS data port (TLSConfig ports=[0]), the application "
                "built after the handshake; bare Twisted: TLSMemoryBIOFactory around the same protocol "
                "on listenTCP (backlog 1024), CertificateOptions from the same certificate and key, "
                "minimum TLS 1.2, acceptableProtocols set, session tickets on (as twisted-sock by "
                "default: both issue tickets). openssl s_time does one connection at a "
                "time and left both servers half idle, hence bench/tlsgen.c.",
    variants=(
        Variant("twisted-sock", "twisted-sock", "tls"),
        Variant("bare", "bare", "tls", label="bare TLSMemoryBIOFactory"),
        ceiling("tls"),
    ),
    measure=measure_tls,
    rows=(
        Row("tls", "rate", "handshakes/s", target=Target(">=", 0.95)),
        Row("tls: server CPU per handshake", "srv_us_per_op", COST, target=SAME_COST, note=CPU_NOTE),
    ),
    needs=("tlsgen",),
))

def resume_workload(name: str, title: str, generator: str, description: str, full_kind: str) -> Workload:
    """
    A resumption workload: C{name}'s resumed handshakes against bare
    Twisted's, each server's full handshakes (C{full_kind}) in the same
    rounds, and the resumed-over-full rows (L{resumed_over_full}).
    """
    return Workload(
        name=name, title=title, generator=generator, description=description,
        variants=(
            Variant("twisted-sock", "twisted-sock", name),
            Variant("bare", "bare", name, label="bare TLSMemoryBIOFactory"),
            *full_variants(full_kind),
        ),
        measure=measure_tls,
        rows=(
            Row(name, "rate", "resumed handshakes/s", target=Target(">=", 0.95)),
            Row(f"{name}: server CPU per handshake", "srv_us_per_op", COST, target=SAME_COST,
                note=CPU_NOTE),
            *resumed_over_full(name),
        ),
        needs=("tlsgen",),
    )


register(resume_workload(
    "tls-resume", "tls-resume: resumed TLS connections (session tickets)",
    "C tlsgen -r (BoringSSL or libssl), 32 in flight",
    "As tls, but every connection offers the session ticket of the last one that "
    "completed, so the server resumes instead of doing a full handshake (TLS 1.3 PSK with "
    "(EC)DHE, as negotiated). twisted-sock: the same port with its defaults (session "
    "tickets on); bare Twisted: the same CertificateOptions with enableSessions and "
    "enableSessionTickets. Goal (SPEC section 8): at least 3 x the full "
    "handshakes per second: each server also runs full TLS 1.3 handshakes in the same "
    "round (the -full variants) and the resumed-over-full rows divide the server CPU per "
    "full handshake by that per resumed one (python -m bench.tls_cost gives OpenSSL's "
    "own share of both).",
    "tls"))

register(resume_workload(
    "tls12-resume", "tls12-resume: resumed TLS 1.2 connections (session tickets)",
    "C tlsgen -r -2 (BoringSSL or libssl), 32 in flight",
    "As tls-resume with the client limited to TLS 1.2: a resumed TLS 1.2 handshake does "
    "no key exchange at all (an abbreviated handshake from the ticket).",
    "tls"))

#: What the RSA resumption workloads add to their ECDSA counterparts.
RSA_NOTE = ("with an RSA 2048 server certificate (bench.servers.write_pki: the same test CA, "
            "server-rsa.pem) instead of the ECDSA P-256 one, for the resumed and the full handshakes "
            "alike: the full handshake's RSA signature costs the server far more than an ECDSA one, "
            "which is what resumption saves (python -m bench.tls_cost has OpenSSL's own figures).")

register(resume_workload(
    "tls-rsa-resume", "tls-rsa-resume: resumed TLS connections, RSA 2048 certificate",
    "C tlsgen -r (BoringSSL or libssl), 32 in flight",
    "As tls-resume (TLS 1.3 PSK with (EC)DHE), " + RSA_NOTE,
    "tls-rsa"))

register(resume_workload(
    "tls12-rsa-resume", "tls12-rsa-resume: resumed TLS 1.2 connections, RSA 2048 certificate",
    "C tlsgen -r -2 (BoringSSL or libssl), 32 in flight",
    "As tls12-resume (an abbreviated TLS 1.2 handshake from the ticket, no key exchange), " + RSA_NOTE,
    "tls-rsa"))

register(Workload(
    name="udp",
    title="udp: 64-byte datagram echo, 64 outstanding",
    generator="C loadgen (udp-echo mode)",
    description="One client socket keeps 64 datagrams of 64 bytes in flight; every echo is checked and "
                "answered by the next datagram. twisted-sock: a UDP socket in any-ip-any-port mode on lo "
                "(127.0.0.1 and ::1); bare Twisted: listenUDP(0, proto, interface='127.0.0.1', "
                "maxPacketSize=65535). Both run the same DatagramProtocol (transport.write(data, addr)).",
    variants=(
        Variant("twisted-sock", "twisted-sock", "udp-echo"),
        Variant("bare", "bare", "udp-echo", label="bare Twisted"),
        ceiling("udp-echo"),
    ),
    measure=measure_udp_echo,
    rows=(
        Row("udp", "rate", "dgram/s", target=Target(">=", 0.95), note="echoed datagrams"),
        Row("udp: server CPU per datagram", "srv_us_per_op", COST, target=SAME_COST, note=CPU_NOTE),
    ),
))

register(Workload(
    name="udp-refused-flood",
    title="udp-refused-flood: 64-byte datagrams, all refused",
    generator="C loadgen (udp-flood mode)",
    description="A UDP socket in specific-ip-any-port mode with target_ip 127.0.0.9 is flooded from "
                "127.0.0.1 (sendmmsg, as fast as one core sends): every datagram is refused. With "
                "prefilter = true (the default) a kernel BPF filter drops them before Python; with "
                "prefilter = false the port's read loop drops them in Python; bare Twisted: a "
                "DatagramProtocol dropping every datagram not from 127.0.0.9 in datagramReceived. The "
                "figure is the server's CPU time (utime + stime, /proc/PID/stat) per million datagrams "
                "sent; the servers that drop in Python run at 100 % and the kernel drops the overflow, "
                "so CPU per datagram read (sent less the socket's drop counter) compares those two.",
    variants=(
        Variant("prefilter", "twisted-sock", "udp-refuse", label="twisted-sock, kernel prefilter"),
        Variant("python", "twisted-sock", "udp-refuse-python", label="twisted-sock, prefilter = false"),
        Variant("bare", "bare", "udp-refuse", label="bare Twisted, check in datagramReceived"),
    ),
    measure=measure_udp_flood,
    profile_variant="python",
    rows=(
        Row("udp-refused-flood: server CPU per M datagrams", "srv_cpu_s_per_m", "s/M", subject="prefilter",
            baseline="python", target=Target("<=", 0.1), note="prefilter against prefilter = false"),
        Row("udp-refused-flood: dropped in the kernel", "kernel_drop_pct", "%", subject="prefilter",
            baseline=None, target=Target(">=", 99.9, on="value", unit="%"), note="prefilter on"),
        Row("udp-refused-flood: Python check, CPU per datagram read", "srv_us_per_read", COST,
            subject="python", baseline="bare", note="prefilter = false against bare Twisted; informational"),
    ),
))


def available(workload: Workload, ctx: Context | None = None) -> str | None:
    """
    Why C{workload} cannot run here, or C{None}. C{needs} names programs on
    the PATH, and C{"tlsgen"}: bench/tlsgen.c built (C{ctx.tlsgen}).
    """
    for tool in workload.needs:
        if tool == "tlsgen":
            if ctx is not None and ctx.tlsgen is None:
                return ctx.tlsgen_error or "bench/tlsgen.c is not built"
        elif shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None
