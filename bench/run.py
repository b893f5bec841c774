"""
The benchmark runner:

    python -m bench [--quick] [--rounds N] [--duration S] [--only accept,echo] [--profile [W,...]]

Every workload runs against twisted-sock and against a bare Twisted server
(same handler, no twisted-sock), each server its own process pinned to core
0 and the load generator pinned to core 1; the variants alternate round by
round (A B, B A, ...). It prints one table and writes it as JSON and
Markdown to bench/results/ (or --out), and, for a full run, as
reStructuredText to docs/performance-results.rst.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import shutil
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import report
from bench.build import loadgen, tlsgen
from bench.procs import REPO, BenchError, Server
from bench.workloads import REGISTRY, Context, Variant, Workload, available

RESULTS_DIR = REPO / "bench" / "results"
DOCS_RESULTS = REPO / "docs" / "performance-results.rst"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 round of 1 s per server (a smoke run)")
    p.add_argument("--rounds", type=int, help="rounds per server (default 5, --quick 1)")
    p.add_argument("--duration", type=float, help="seconds of load per round (default 5, --quick 1)")
    p.add_argument("--warmup", type=float, help="seconds of load before counting (default 0.5, --quick 0.2)")
    p.add_argument("--slice", type=float, default=1.0,
                   help="seconds of load per turn when variants are interleaved (default 1)")
    p.add_argument("--only", help=f"comma-separated workloads (of: {', '.join(REGISTRY)})")
    p.add_argument("--idle-connections", type=int, default=10000, help="idle workload size (default 10000)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory (default bench/results)")
    p.add_argument("--docs", dest="docs", action="store_true", default=None,
                   help="write docs/performance-results.rst (default: only for a full run)")
    p.add_argument("--no-docs", dest="docs", action="store_false")
    p.add_argument("--profile", nargs="?", const="missed", metavar="W[,W]",
                   help="afterwards, profile the twisted-sock server with py-spy under these workloads "
                        "(default: those that missed a target)")
    p.add_argument("--tree", type=Path,
                   help="import twisted_sock from this directory (for example a `git worktree` of a "
                        "commit) instead of this checkout")
    p.add_argument("--commit", metavar="REV",
                   help="measure twisted_sock as of this commit (exported with git archive into "
                        "bench/_build/), not the working tree")
    p.add_argument("--merge", action="store_true",
                   help="merge these workloads' new results into OUT/latest.json (a workload of a full "
                        "run that was disturbed, re-run alone); rewrites docs/performance-results.rst if "
                        "that run was a full one")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.duration = args.duration or (1.0 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.2 if args.quick else 0.5)
    if args.rounds < 1 or args.rounds > 50 or not 0 < args.duration <= 120 or not 0 <= args.warmup <= 10:
        p.error("rounds must be 1-50, duration 0-120 s, warmup 0-10 s")
    if not 0.2 <= args.slice <= 120:
        p.error("slice must be 0.2-120 s")
    names = [n.strip() for n in args.only.split(",")] if args.only else list(REGISTRY)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        p.error(f"unknown workload(s) {', '.join(unknown)} (choose from {', '.join(REGISTRY)})")
    args.names = names
    if args.merge and not args.only:
        p.error("--merge needs --only (the workloads to replace)")
    args.docs_given = args.docs is not None
    if args.docs is None:
        args.docs = not args.quick and not args.only
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def check_machine() -> None:
    cores = os.sched_getaffinity(0)
    if not {0, 1} <= cores:
        raise BenchError(f"needs cores 0 and 1 (server and generator); this process may use {sorted(cores)}")
    if shutil.which("taskset") is None:
        raise BenchError("taskset is not installed (Debian package util-linux)")


def run_workload(ctx: Context, workload: Workload, rounds: int, slice_seconds: float, log_dir: Path,
                 problems: list[str]) -> dict[str, list[dict[str, Any]]]:
    """
    All rounds of one workload, its variants alternated (A B C, C B A, ...).

    Workloads that measure a fresh process (start-up, memory) get a fresh
    server for every (round, variant). The others start every variant's
    server for the round (the idle ones wait on core 0 at no cost) and
    interleave them in slices of C{slice_seconds}: A B C A B C ... until
    each has had C{duration} seconds of load, so that a slow spell of the
    machine hits every variant alike. A round's figure for a variant is the
    mean over its slices.
    """
    results: dict[str, list[dict[str, Any]]] = {v.key: [] for v in workload.variants}
    for r in range(rounds):
        order = workload.variants if r % 2 == 0 else tuple(reversed(workload.variants))
        if workload.fresh_servers:
            for variant in order:
                tag = f"{workload.name}/{variant.key} round {r + 1}/{rounds}"
                measured = _measure_fresh(ctx, workload, variant, log_dir / f"{workload.name}-"
                                          f"{variant.key}-{r + 1}.log", tag, problems)
                if measured is not None:
                    measured["round"] = r
                    results[variant.key].append(measured)
                    log(f"  {tag}: {_brief(workload, variant.key, measured)}")
            continue
        servers: dict[str, Server] = {}
        try:
            for variant in order:
                servers[variant.key] = Server(
                    variant.impl, variant.kind, variant.ports, loadgen=ctx.loadgen,
                    log_path=log_dir / f"{workload.name}-{variant.key}-{r + 1}.log").start()
            slices = max(1, round(ctx.duration / slice_seconds))
            per_slice = ctx.duration / slices
            sliced: dict[str, list[dict[str, Any]]] = {v.key: [] for v in order}
            for i in range(slices):
                warm = ctx.warmup if i == 0 else min(ctx.warmup, 0.1)
                slice_ctx = dataclasses.replace(ctx, duration=per_slice, warmup=warm)
                for variant in (order if i % 2 == 0 else tuple(reversed(order))):
                    server = servers[variant.key]
                    sliced[variant.key].append(workload.measure(slice_ctx, server, variant))
                    if not server.alive():
                        raise BenchError(f"{variant.key} server exited during the run; see {server.log_path}")
        except BenchError as e:
            problems.append(f"{workload.name} round {r + 1}/{rounds}: {e}")
            log(f"  {workload.name} round {r + 1}/{rounds}: FAILED: {e}")
            continue
        finally:
            for server in servers.values():
                server.stop()
        for variant in order:
            tag = f"{workload.name}/{variant.key} round {r + 1}/{rounds}"
            measured = _combine(sliced[variant.key])
            measured["round"] = r
            for p in measured.get("problems", []):
                problems.append(f"{tag}: {p}")
            results[variant.key].append(measured)
            log(f"  {tag}: {_brief(workload, variant.key, measured)}")
    return results


def _measure_fresh(ctx: Context, workload: Workload, variant: Variant, log_path: Path, tag: str,
                   problems: list[str]) -> dict[str, Any] | None:
    server = Server(variant.impl, variant.kind, variant.ports, loadgen=ctx.loadgen, log_path=log_path)
    try:
        server.start()
        measured = workload.measure(ctx, server, variant)
        if not server.alive():
            raise BenchError(f"server exited during the run; see {server.log_path}")
    except BenchError as e:
        problems.append(f"{tag}: {e}")
        log(f"  {tag}: FAILED: {e}")
        return None
    finally:
        server.stop()
    for p in measured.get("problems", []):
        problems.append(f"{tag}: {p}")
    return measured


def _combine(slices: list[dict[str, Any]]) -> dict[str, Any]:
    """
    One round's measurement from its slices: the mean of every number, the
    problems of all, the raw outputs in a list.
    """
    out: dict[str, Any] = {"slices": len(slices)}
    for key in slices[0]:
        values = [m.get(key) for m in slices]
        if key == "problems":
            out[key] = [p for m in slices for p in m.get("problems", [])]
        elif key == "raw":
            out[key] = values
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            out[key] = statistics.fmean(values)
        else:
            out[key] = values[0] if all(v == values[0] for v in values) else values
    return out


def _brief(workload: Workload, key: str, m: dict[str, Any]) -> str:
    parts = []
    for row in workload.rows:
        if key in (row.subject, row.baseline) and row.metric in m and m[row.metric] is not None:
            value = m[row.metric]
            if isinstance(value, float) and math.isnan(value):
                continue
            parts.append(f"{row.metric}={report.fmt_value(value, row.unit)}")
    if "rate" in m and not any(p.startswith("rate=") for p in parts):
        parts.append(f"rate={m['rate']:,.0f}/s")
    if "gen_cpu_pct" in m:
        parts.append(f"generator CPU {m['gen_cpu_pct']:.0f}% (core idle {_pct(m['gen_core_idle_pct'])}), "
                     f"server CPU {m['srv_cpu_pct']:.0f}%, steal {_pct(m['server_core_steal_pct'])}"
                     f"/{_pct(m['gen_core_steal_pct'])}")
    return ", ".join(dict.fromkeys(parts))


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}%"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        width = max(map(len, REGISTRY))
        for name, w in REGISTRY.items():
            print(f"{name:{width}} {w.title}  [{w.generator}]")
        return 0
    check_machine()
    commit = None
    if args.commit is not None:
        if args.tree is not None:
            raise BenchError("--tree and --commit exclude each other")
        from bench.build import export_commit

        args.tree, commit = export_commit(args.commit)
    if args.tree is not None:
        tree = args.tree.resolve()
        if not (tree / "twisted_sock" / "__init__.py").exists():
            raise BenchError(f"{tree} has no twisted_sock package")
        os.environ["BENCH_SOCK_TREE"] = str(tree)
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    log_dir = out_dir / "logs"
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    tls_binary, tls_error = None, ""
    if any("tlsgen" in REGISTRY[name].needs for name in args.names):
        try:
            tls_binary = tlsgen()
        except BenchError as e:
            tls_error = str(e).splitlines()[0]
    ctx = Context(loadgen=loadgen(), wrk=shutil.which("wrk"), duration=args.duration,
                  warmup=args.warmup, idle_connections=args.idle_connections,
                  tlsgen=tls_binary, tlsgen_error=tls_error)
    settings = {
        "rounds": args.rounds, "duration": args.duration, "warmup": args.warmup, "quick": args.quick,
        "slice": args.slice,
        "workloads": args.names, "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": (report._read("/proc/loadavg") or "?").split(" ")[:3],
        "idle_connections": args.idle_connections,
    }
    settings["loadavg_start"] = " ".join(settings["loadavg_start"])
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    generators: list[dict[str, Any]] = []
    detail: dict[str, Any] = {}
    log(f"bench: {', '.join(args.names)}; {args.rounds} round(s) × {args.duration:g} s; "
        f"server on core 0, generator on core 1")
    for name in args.names:
        workload = REGISTRY[name]
        why = available(workload, ctx)
        if why:
            problems.append(f"{name}: skipped: {why}")
            log(f"[{name}] skipped: {why}")
            continue
        log(f"[{name}] {workload.title} ({workload.generator})")
        measured = run_workload(ctx, workload, args.rounds, args.slice, log_dir, problems)
        rows += report.summarise(workload, measured)
        generators += report.generator_rows(workload, measured)
        detail[name] = report.workload_doc(name) | {"results": {
            key: {"rounds": ms, "median": _medians(ms)} for key, ms in measured.items()}}
    machine = report.machine(args.tree.resolve() if args.tree else REPO)
    machine["tlsgen_library"] = report._first_line([str(ctx.tlsgen), "version"]) if ctx.tlsgen else None
    if commit is not None:
        machine["twisted_sock"].update(commit=commit[:12], modified=False, tree=f"git archive {commit[:12]}")
    results: dict[str, Any] = {
        "machine": machine,
        "settings": settings,
        "rows": rows,
        "generators": generators,
        "problems": problems,
        "workloads": detail,
        "profiles": {},
    }
    if args.profile:
        wanted = ([r["workload"] for r in rows if r["met"] is False] if args.profile == "missed"
                  else [n.strip() for n in args.profile.split(",")])
        for name in dict.fromkeys(wanted):
            if name not in REGISTRY:
                problems.append(f"profile: unknown workload {name}")
                continue
            log(f"[profile] {name}: twisted-sock server under py-spy")
            from bench.profiling import profile

            try:
                workload = REGISTRY[name]
                results["profiles"][name] = profile(ctx, workload, workload.profile_variant, out_dir)
            except BenchError as e:
                problems.append(f"profile {name}: {e}")
    settings["elapsed_seconds"] = round(time.perf_counter() - t0, 1)
    settings["loadavg_end"] = " ".join((report._read("/proc/loadavg") or "?").split(" ")[:3])
    docs = args.docs
    if args.merge:
        results, full = merge_results(out_dir / "latest.json", results, args.names)
        docs = args.docs if args.docs_given else full
    write_outputs(results, out_dir, docs)
    print(report.render_text(results))
    for name, prof in results["profiles"].items():
        print(f"\nProfile of the twisted-sock server under {name}:\n{prof['summary']}")
    return 0


def merge_results(path: Path, new: dict[str, Any], names: list[str]) -> tuple[dict[str, Any], bool]:
    """
    The results in C{path} with workloads C{names} replaced by those of
    C{new} (a re-run of workloads that were disturbed or skipped), and
    whether the old results were a full run (then the docs are rewritten
    too).
    """
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BenchError(f"--merge: cannot read {path}: {e}") from None
    order = {name: i for i, name in enumerate(REGISTRY)}

    def ordered(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(items, key=lambda item: order.get(item["workload"], len(order)))

    def kept(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [item for item in items if item["workload"] not in names]

    def mine(problem: str) -> bool:
        head = problem.split(" ", 1)[0].split("/", 1)[0].rstrip(":")
        return head in names or problem.startswith("profile ") and problem.split(" ")[1].rstrip(":") in names

    settings = old["settings"]
    settings.setdefault("reruns", []).append({
        "workloads": names, "started": new["settings"]["started"], "rounds": new["settings"]["rounds"],
        "duration": new["settings"]["duration"], "loadavg_start": new["settings"]["loadavg_start"],
        "loadavg_end": new["settings"]["loadavg_end"], "elapsed_seconds": new["settings"]["elapsed_seconds"],
    })
    merged = dict(old)
    merged["settings"] = settings
    # A generator missing from the full run (its workloads skipped) and
    # installed for the re-run: the machine lines name the one used.
    found = {key: new["machine"][key] for key in ("wrk", "gcc", "tlsgen_library")
             if not old["machine"].get(key) and new["machine"].get(key)}
    merged["machine"] = {**old["machine"], **found}
    merged["rows"] = ordered(kept(old["rows"]) + new["rows"])
    merged["generators"] = ordered(kept(old["generators"]) + new["generators"])
    merged["problems"] = [p for p in old["problems"] if not mine(p)] + new["problems"]
    workloads = {**{k: v for k, v in old["workloads"].items() if k not in names}, **new["workloads"]}
    merged["workloads"] = {k: workloads[k] for k in sorted(workloads, key=lambda k: order.get(k, len(order)))}
    merged["profiles"] = {**old.get("profiles", {}), **new.get("profiles", {})}
    full = not settings.get("quick") and set(settings.get("workloads", [])) >= set(REGISTRY)
    return merged, full


def _medians(ms: list[dict[str, Any]]) -> dict[str, Any]:
    first = ms[0] if ms else {}
    keys = [k for k, v in first.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "round"]
    return {k: report.median([m.get(k) for m in ms]) for k in keys}


def write_outputs(results: dict[str, Any], out_dir: Path, docs: bool) -> None:
    def dump(path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    dump(out_dir / "latest.json", json.dumps(results, indent=2, default=_json_default) + "\n")
    dump(out_dir / "latest.md", report.render_markdown(results))
    if docs:
        dump(DOCS_RESULTS, report.render_rst(results))
        log(f"wrote {DOCS_RESULTS.relative_to(REPO)}")
    log(f"wrote {out_dir / 'latest.json'} and latest.md")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(type(obj).__name__)


def entry() -> None:
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception:
        traceback.print_exc()
        sys.exit(1)


if __name__ == "__main__":
    entry()
