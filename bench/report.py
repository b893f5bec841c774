"""
Summaries and tables: the machine description, the rows (medians, ratios,
spreads, targets), and the same table as text, Markdown and reStructuredText.
"""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any

from bench.workloads import REGISTRY, Workload


def _first_line(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0].strip() if text else None


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def code_version(tree: Path) -> dict[str, Any]:
    """
    Which twisted_sock was measured: its version, the commit of the tree it
    came from and whether twisted_sock/ differed from that commit.
    """
    out: dict[str, Any] = {"tree": str(tree), "version": None, "commit": None, "modified": None}
    init = tree / "twisted_sock" / "__init__.py"
    match = re.search(r'^__version__ = "([^"]+)"', init.read_text(), re.M) if init.exists() else None
    out["version"] = match.group(1) if match else None
    commit = _first_line(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"])
    if commit and re.fullmatch(r"[0-9a-f]+", commit):
        out["commit"] = commit
        status = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--", "twisted_sock"],
                                capture_output=True, text=True, timeout=30)
        out["modified"] = bool(status.stdout.strip())
    return out


def machine(tree: Path) -> dict[str, Any]:
    """
    What the numbers were measured on.
    """
    import twisted

    cpuinfo = _read("/proc/cpuinfo") or ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mhz = re.search(r"^cpu MHz\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo") or "", re.M)
    wrk = _first_line(["wrk", "--version"])
    try:
        from OpenSSL import SSL

        server_openssl = SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()
    except Exception:  # pragma: no cover - pyOpenSSL missing or too old
        server_openssl = None
    return {
        "nproc": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "cpu_mhz": float(mhz.group(1)) if mhz else None,
        "memory_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "twisted": twisted.__version__,
        "twisted_sock": code_version(tree),
        "reactor": _reactor_name(),
        "wrk": wrk.split(" Copyright")[0] if wrk else None,
        "gcc": _first_line(["gcc", "--version"]),
        "openssl": (_first_line(["openssl", "version"]) or "").split(" (Library")[0] or None,
        "server_openssl": server_openssl,
        "somaxconn": _read("/proc/sys/net/core/somaxconn"),
        "ip_local_port_range": _read("/proc/sys/net/ipv4/ip_local_port_range"),
        "loadavg": _read("/proc/loadavg"),
    }


def _reactor_name() -> str:
    from twisted.internet import default

    return default.install.__module__ + "." + default.install.__name__


# Aggregation -----------------------------------------------------------------


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else None


def spread_pct(values: list[float]) -> float | None:
    """
    The range of the rounds, (max - min) / median, in percent; None for
    fewer than two rounds.
    """
    values = [v for v in values if v is not None and not math.isnan(v)]
    if len(values) < 2:
        return None
    mid = statistics.median(values)
    return 100.0 * (max(values) - min(values)) / mid if mid else None


def per_round_ratio(subject: list[dict[str, Any]], baseline: list[dict[str, Any]],
                    metric: str) -> float | None:
    """
    The median over rounds of each round's ratio C{metric} of C{subject}
    over C{baseline} (rounds matched by their C{round}, else by position),
    or C{None} when fewer than two rounds have both figures.

    Every round runs each variant in turn, so a round's ratio cancels a
    change of the machine's speed between rounds, which the ratio of the
    two medians does not.
    """
    def by_round(ms: list[dict[str, Any]]) -> dict[int, float | None]:
        return {m.get("round", i): m.get(metric) for i, m in enumerate(ms)}

    s, b = by_round(subject), by_round(baseline)
    ratios = [value / b[r] for r, value in s.items() if value is not None and b.get(r)]
    return median(ratios) if len(ratios) >= 2 else None


def summarise(workload: Workload, rounds: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """
    The table rows of one workload from its per-variant measurements.
    """
    out = []
    for row in workload.rows:
        subj = [m.get(row.metric) for m in rounds.get(row.subject, [])]
        base = [m.get(row.metric) for m in rounds.get(row.baseline, [])] if row.baseline else []
        s_med, b_med = median(subj), median(base) if row.baseline else None
        ratio = s_med / b_med if s_med is not None and b_med else None
        met = row.target.met(s_med, ratio) if row.target else None
        out.append({
            "workload": workload.name,
            "label": row.label,
            "metric": row.metric,
            "unit": row.unit,
            "subject": row.subject,
            "subject_label": workload.variant(row.subject).title,
            "baseline": row.baseline,
            "baseline_label": workload.variant(row.baseline).title if row.baseline else None,
            "subject_median": s_med,
            "baseline_median": b_med,
            "ratio": ratio,
            "round_ratio": (per_round_ratio(rounds.get(row.subject, []), rounds.get(row.baseline, []),
                                            row.metric) if row.baseline else None),
            "subject_spread_pct": spread_pct(subj),
            "baseline_spread_pct": spread_pct(base),
            "rounds": len([x for x in subj if x is not None]),
            "target": row.target.text() if row.target else None,
            "met": met,
            "note": row.note,
        })
    return out


def generator_rows(workload: Workload, rounds: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """
    The evidence that the load generator is not the bottleneck: its CPU use
    on its core next to the server's on its own, per variant.
    """
    out = []
    for v in workload.variants:
        ms = rounds.get(v.key, [])
        if not any("gen_cpu_pct" in m for m in ms):
            continue

        def col(key: str, ms: list[dict[str, Any]] = ms) -> list[float]:
            return [m[key] for m in ms if m.get(key) is not None]

        gen = col("gen_cpu_pct")
        out.append({
            "workload": workload.name,
            "variant": v.key,
            "variant_label": v.title,
            "generator": workload.generator,
            "rate_median": median(col("rate")),
            "gen_cpu_pct_median": median(gen),
            "gen_cpu_pct_max": max(gen),
            "gen_core_idle_pct_median": median(col("gen_core_idle_pct")),
            "gen_core_idle_pct_min": min(col("gen_core_idle_pct"), default=None),
            "srv_cpu_pct_median": median(col("srv_cpu_pct")),
            "server_core_busy_pct_median": median(col("server_core_busy_pct")),
            "server_core_steal_pct_median": median(col("server_core_steal_pct")),
            "gen_core_steal_pct_median": median(col("gen_core_steal_pct")),
        })
    return out


# Formatting ------------------------------------------------------------------


def fmt_value(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit in ("s", "s/M"):
        return f"{value:.3f} {unit}"
    if unit == "%":
        return f"{value:.3f} %"
    if unit == "MB/s":
        return f"{value:,.1f} MB/s"
    if unit == "µs":
        return f"{value:,.1f} µs"
    if unit == "B/conn":
        return f"{value:,.0f} B"
    return f"{value:,.0f} {unit}"


def fmt_ratio(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio:.2f}×"


def fmt_spread(row: dict[str, Any]) -> str:
    parts = []
    for key in ("subject_spread_pct", "baseline_spread_pct"):
        v = row[key]
        if key == "baseline_spread_pct" and row["baseline"] is None:
            continue
        parts.append("–" if v is None else f"{v:.0f}%")
    return " / ".join(parts)


def fmt_met(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: "–"}[met]


COLUMNS = ["workload", "twisted-sock (median)", "baseline (median)", "ratio", "per round", "spread", "target",
           "met?"]


def table_cells(rows: list[dict[str, Any]]) -> list[list[str]]:
    cells = []
    for r in rows:
        baseline = "–"
        if r["baseline"] is not None:
            baseline = f"{fmt_value(r['baseline_median'], r['unit'])} ({r['baseline_label']})"
        subject = fmt_value(r["subject_median"], r["unit"])
        if r["subject"] != "twisted-sock":
            subject += f" ({r['subject_label']})"
        cells.append([
            r["label"],
            subject,
            baseline,
            fmt_ratio(r["ratio"]),
            fmt_ratio(r.get("round_ratio")),
            fmt_spread(r),
            r["target"] or "–",
            fmt_met(r["met"]),
        ])
    return cells


GEN_COLUMNS = ["workload", "server", "rate/s", "generator CPU %", "generator core idle %",
               "server CPU %", "server core busy %", "steal % (core 0 / 1)"]


def _p(v: float | None) -> str:
    return "–" if v is None else f"{v:.0f}"


def generator_cells(rows: list[dict[str, Any]]) -> list[list[str]]:
    """
    Medians over the rounds. Generator CPU is the generator process's own
    time on core 1 (max in brackets); core idle is what core 1 had left
    (min in brackets); server CPU is the server process's time on core 0;
    core busy includes the kernel's packet work done there.
    """
    return [[
        g["workload"], g["variant_label"],
        "–" if g["rate_median"] is None else f"{g['rate_median']:,.0f}",
        f"{_p(g['gen_cpu_pct_median'])} ({_p(g['gen_cpu_pct_max'])})",
        f"{_p(g['gen_core_idle_pct_median'])} ({_p(g['gen_core_idle_pct_min'])})",
        _p(g["srv_cpu_pct_median"]),
        _p(g["server_core_busy_pct_median"]),
        f"{_p(g['server_core_steal_pct_median'])} / {_p(g['gen_core_steal_pct_median'])}",
    ] for g in rows]


def text_table(header: list[str], cells: list[list[str]]) -> str:
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def markdown_table(header: list[str], cells: list[list[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in cells]
    return "\n".join(lines)


def rst_table(header: list[str], cells: list[list[str]], widths: str | None = None) -> str:
    lines = [".. list-table::", "   :header-rows: 1"]
    if widths:
        lines.append(f"   :widths: {widths}")
    lines.append("")
    for row in [header, *cells]:
        lines.append("   * - " + (row[0] or " "))
        lines += ["     - " + (c or " ") for c in row[1:]]
    return "\n".join(lines)


def machine_lines(m: dict[str, Any], settings: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("CPU", f"{m['cpu_model']} — {m['nproc']} cores (server pinned to core 0, generator to core 1)"),
        ("Memory", f"{m['memory_gib']} GiB"),
        ("Kernel", f"Linux {m['kernel']}"),
        ("Python", f"{m['python_implementation']} {m['python']}"),
        ("Twisted", f"{m['twisted']} ({m['reactor']})"),
        ("twisted-sock", _code_text(m["twisted_sock"])),
        ("Generators", f"{m['gcc'] or 'gcc ?'} (bench/loadgen.c, bench/tlsgen.c, -O2); "
                       f"{m['wrk'] or 'wrk not installed'}; tlsgen linked with "
                       f"{m.get('tlsgen_library') or 'nothing (not built)'} "
                       f"(system: {m.get('openssl') or '?'})"),
        ("TLS in the servers", f"pyOpenSSL on {m.get('server_openssl') or '?'} (the cryptography wheel's)"),
        ("Kernel settings", f"somaxconn {m['somaxconn']}, ephemeral ports {m['ip_local_port_range']}"),
        ("Run", f"{settings['rounds']} round(s) × {settings['duration']:g} s of load per server "
                f"(+ {settings['warmup']:g} s warm-up), variants interleaved in {settings['slice']:g} s "
                f"slices; {settings['started']}, {settings.get('elapsed_seconds', '?')} s; load average "
                f"{settings['loadavg_start']} at start, {settings.get('loadavg_end', '?')} at end"),
        *[("Re-run", f"{', '.join(r['workloads'])} alone (disturbed or skipped in the run above): "
                     f"{r['rounds']} round(s) × {r['duration']:g} s; {r['started']}, "
                     f"{r['elapsed_seconds']} s; "
                     f"load average {r['loadavg_start']} at start, {r['loadavg_end']} at end")
          for r in settings.get("reruns", [])],
    ]


def _code_text(code: dict[str, Any]) -> str:
    text = f"{code['version']}"
    if code.get("commit"):
        text += f" (commit {code['commit']}{', with uncommitted changes' if code['modified'] else ''})"
    return text


def render_text(results: dict[str, Any]) -> str:
    out = [text_table(COLUMNS, table_cells(results["rows"]))]
    if results["problems"]:
        out.append("\nProblems seen:")
        out += [f"  - {p}" for p in results["problems"]]
    out.append("")
    out.append(text_table(GEN_COLUMNS, generator_cells(results["generators"])))
    return "\n".join(out)


def render_markdown(results: dict[str, Any]) -> str:
    m, s = results["machine"], results["settings"]
    out = ["# twisted-sock benchmark results", ""]
    out += [f"- **{k}:** {v}" for k, v in machine_lines(m, s)]
    out += ["", "Ratios are twisted-sock's median over the baseline's median (same run); per round: "
            "the median of each round's ratio (the variants of a round run in turn, so it cancels a "
            "change of the machine's speed between rounds). Spread is each side's (max − min) / median "
            "over the rounds.", ""]
    out.append(markdown_table(COLUMNS, table_cells(results["rows"])))
    if results["problems"]:
        out += ["", "**Problems seen:**", ""] + [f"- {p}" for p in results["problems"]]
    out += ["", "## Load generators", ""]
    out.append(markdown_table(GEN_COLUMNS, generator_cells(results["generators"])))
    for name, prof in results.get("profiles", {}).items():
        out += ["", f"## Profile: {name} (twisted-sock server, py-spy)", "", "```", prof["summary"], "```"]
    return "\n".join(out) + "\n"


def render_rst(results: dict[str, Any]) -> str:
    m, s = results["machine"], results["settings"]
    out = [".. This file is written by ``python -m bench``; do not edit it by hand.", ""]
    out += [f":{k}: {v}" for k, v in machine_lines(m, s)]
    out += ["", rst_table(COLUMNS, table_cells(results["rows"]), "20 15 24 7 7 10 9 6")]
    if results["problems"]:
        out += ["", "Problems seen in this run:", ""] + [f"* {p}" for p in results["problems"]]
    out += ["", "Load generator and server CPU use (each on its own core):", ""]
    out.append(rst_table(GEN_COLUMNS, generator_cells(results["generators"])))
    for name, prof in results.get("profiles", {}).items():
        out += ["", f"Profile of the twisted-sock server, workload ``{name}`` (py-spy):", "",
                "::", ""] + ["   " + line for line in prof["summary"].splitlines()]
    return "\n".join(out) + "\n"


def workload_doc(name: str) -> dict[str, Any]:
    w = REGISTRY[name]
    return {"title": w.title, "generator": w.generator, "description": w.description,
            "variants": {v.key: {"label": v.title, "impl": v.impl, "kind": v.kind, "ports": v.ports}
                         for v in w.variants}}
