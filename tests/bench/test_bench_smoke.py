"""
Smoke test of the benchmark runner (bench/): not a benchmark. One short
round of the accept workload checks that the runner, the server processes,
the compiled C load generator and the JSON output work together; it takes a
few seconds and is bounded at 30. The UDP modes of the C generator and the
TLS generator are checked against their own C servers (a second each). The
numbers are not checked.
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
    assert {"accept", "refuse", "echo", "http", "many-ports", "idle", "tls", "tls-resume",
            "tls12-resume", "tls-rsa-resume", "tls12-rsa-resume", "udp", "udp-refused-flood"} <= names


def _serve(argv: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"{argv[0]} serve printed nothing"
    return proc, json.loads(line)["port"]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()


def _last_json(argv: list[str]) -> dict:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_loadgen_udp_modes_against_the_c_server() -> None:
    require_tool("gcc")
    from bench.build import loadgen

    binary = str(loadgen())
    server, port = _serve([binary, "serve", "-k", "udp-echo", "-t", "20"])
    try:
        echo = _last_json([binary, "udp-echo", "-p", str(port), "-c", "8", "-m", "64",
                           "-d", "0.3", "-w", "0.1"])
        assert echo["messages"] > 0
        assert echo["mismatches"] == 0 and echo["errors"] == 0
        flood = _last_json([binary, "udp-flood", "-p", str(port), "-m", "64", "-d", "0.2", "-w", "0"])
        assert flood["sent"] > 0 and flood["errors"] == 0
    finally:
        _stop(server)


def _tlsgen() -> str:
    require_tool("gcc")
    from bench.build import tlsgen
    from bench.procs import BenchError

    try:
        return str(tlsgen())
    except BenchError as e:
        message = f"bench/tlsgen.c does not build here: {str(e).splitlines()[0]}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must install libssl-dev: see .ci/run)")
        pytest.skip(message)


def test_tlsgen_against_its_own_server(tmp_path: Path) -> None:
    from twisted_sock.testing import make_pki

    binary = _tlsgen()
    pki = make_pki(str(tmp_path))
    server, port = _serve([binary, "serve", "-C", pki.server_certificate, "-K", pki.server_key, "-t", "20"])
    try:
        res = _last_json([binary, "connect", "-p", str(port), "-c", "4", "-d", "0.5", "-w", "0.1"])
        assert res["ok"] > 0 and res["ok"] == res["completed"], res
        assert res["version"].startswith("TLSv1")
    finally:
        _stop(server)


def _server_key_type(port: int) -> str:
    """
    The key type (C{"ecdsa"}, C{"rsa"}) of the certificate the TLS server
    on C{port} presents (one handshake with Python's C{ssl}, no
    verification).
    """
    import socket
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    key = x509.load_der_x509_certificate(der).public_key()
    return "rsa" if isinstance(key, rsa.RSAPublicKey) else "ecdsa" if isinstance(
        key, ec.EllipticCurvePublicKey) else type(key).__name__


@pytest.mark.parametrize(("kind", "version_flags", "key_type"), [
    ("tls-resume", [], "ecdsa"),
    ("tls12-resume", ["-2"], "ecdsa"),
    ("tls-rsa-resume", [], "rsa"),
    ("tls12-rsa-resume", ["-2"], "rsa"),
])
def test_tlsgen_resumes_against_twisted_sock(tmp_path: Path, kind: str, version_flags: list[str],
                                             key_type: str) -> None:
    """
    C{tlsgen connect -r} (the resumption workloads) against the
    twisted-sock server of each resumption kind, on a PKI directory as the
    runner writes it: the server presents the ECDSA or (C{-rsa} kinds) the
    RSA certificate, and every connection that offers a session is
    resumed, TLS 1.3 and (C{-2}) TLS 1.2.
    """
    from bench.servers import TLS_KINDS, write_pki

    assert TLS_KINDS[kind].tls12 == bool(version_flags) and TLS_KINDS[kind].resume
    binary = _tlsgen()
    write_pki(str(tmp_path))
    server, port = _serve([sys.executable, "-m", "bench.servers", "twisted-sock", kind,
                           "--pki", str(tmp_path), "--log", "none", "--max-seconds", "30"])
    try:
        assert _server_key_type(port) == key_type
        res = _last_json([binary, "connect", "-p", str(port), "-c", "4", "-d", "0.5", "-w", "0.1", "-r",
                          *version_flags])
        assert res["ok"] > 0 and res["ok"] == res["completed"], res
        assert res["offered"] > 0 and res["resumed"] == res["offered"], res
        assert res["version"] == ("TLSv1.2" if version_flags else "TLSv1.3"), res
    finally:
        _stop(server)


def test_bare_tls_server_uses_the_kinds_certificate(tmp_path: Path) -> None:
    """
    The bare Twisted server of an RSA kind presents the RSA certificate,
    of an ECDSA kind the ECDSA one: both sides of a row use the same key.
    """
    from bench.servers import write_pki

    write_pki(str(tmp_path))
    for kind, key_type in (("tls-rsa", "rsa"), ("tls12-resume", "ecdsa")):
        server, port = _serve([sys.executable, "-m", "bench.servers", "bare", kind,
                               "--pki", str(tmp_path), "--log", "none", "--max-seconds", "30"])
        try:
            assert _server_key_type(port) == key_type
        finally:
            _stop(server)


def test_tls_cost_resumes_what_it_should(tmp_path: Path) -> None:
    """
    C{python -m bench.tls_cost} with a few handshakes a row: no full row
    is counted as resumed and every resumed row resumed every handshake
    (the detection by the server's first flight works), in the JSON too.
    """
    out = tmp_path / "tls-cost.json"
    result = subprocess.run([sys.executable, "-m", "bench.tls_cost", "--count", "10", "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = json.loads(out.read_text())["resumed"]
    assert resumed == {
        label: (10 if label.startswith("resumed") else 0) for label in resumed}
    assert len(resumed) == 6


def test_log_cost_measures_the_event_and_its_parts() -> None:
    """
    C{python -m bench.log_cost} with a few events a round: one line per
    row, each with a positive time, and the whole event costs more than
    its observer alone (the rows run what they name).
    """
    from bench.log_cost import ROWS

    result = subprocess.run([sys.executable, "-m", "bench.log_cost", "--count", "1000"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    times = {}
    for line in result.stdout.splitlines()[1:]:
        label, _, figure = line.strip().rpartition("  ")
        times[label.strip()] = float(figure.split()[0])
    assert set(times) == set(ROWS) and all(t > 0 for t in times.values())
    assert times["event"] > times["observer"] > times["text line"]


def test_merge_takes_a_generator_the_full_run_lacked(tmp_path: Path) -> None:
    """
    A workload skipped in a full run for a missing generator (wrk) and
    re-run with --merge once it is installed: its rows replace the old
    ones, its skip is no longer a problem, and the machine lines name the
    generator the re-run used (and keep what the full run found).
    """
    from bench.run import merge_results
    from bench.workloads import REGISTRY

    def results(wrk: str | None, rows: list[dict[str, str]], problems: list[str]) -> dict[str, object]:
        return {"machine": {"wrk": wrk, "gcc": "gcc 12", "tlsgen_library": None},
                "settings": {"workloads": list(REGISTRY), "started": "then", "rounds": 1, "duration": 1.0,
                             "loadavg_start": "0", "loadavg_end": "0", "elapsed_seconds": 1.0},
                "rows": rows, "generators": [], "problems": problems, "workloads": {}, "profiles": {}}

    old = results(None, [{"workload": "accept"}], ["http: skipped: wrk is not installed"])
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(old))
    merged, full = merge_results(path, results("wrk 4.1.0", [{"workload": "http"}], []), ["http"])
    assert full
    assert merged["machine"] == {"wrk": "wrk 4.1.0", "gcc": "gcc 12", "tlsgen_library": None}
    assert merged["problems"] == []
    assert [row["workload"] for row in merged["rows"]] == ["accept", "http"]
    assert merged["settings"]["reruns"][0]["workloads"] == ["http"]


def test_per_round_ratio_cancels_the_machine_speeding_up() -> None:
    """
    The machine speeds up during the third round (the baseline measured
    before the change, the subject after): every other round's ratio is
    1.2, and so is the median of the rounds' ratios, while the two medians
    come from different rounds (84 / 100 = 0.84). Rounds are matched by
    number: a round one side lacks is left out.
    """
    from bench.report import per_round_ratio

    def rounds(values: list[float | None]) -> list[dict[str, object]]:
        return [{"round": r, "us": v} for r, v in enumerate(values)]

    base, subject = rounds([100, 100, 100, 70, 70]), rounds([120, 120, 84, 84, 84])
    assert per_round_ratio(subject, base, "us") == pytest.approx(1.2)
    assert per_round_ratio([*subject[:1], *subject[2:]], base, "us") == pytest.approx(1.2)
    assert per_round_ratio(rounds([120, None]), rounds([100, 100]), "us") is None
