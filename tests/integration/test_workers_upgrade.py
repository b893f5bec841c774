"""
Upgrades with workers, against a real C{twistd}: under continuous
connections from several source addresses, C{twisted-sock upgrade} starts
a new main process with new workers on the same sockets; none fails, a
held connection keeps its bytes, the pid file names the new main process,
the peer affinity holds afterwards; a new generation that fails (a bad
file, another number of workers) leaves the old one serving.
"""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.integration.clients import ask
from tests.integration.test_twistd import TWISTED_SOCK, Twistd, run
from tests.integration.test_upgrade import Load, end, gone, upgrade_by, write_config
from tests.integration.test_workers import READY, SOURCES, hold, spread, status, until, wanted_spread

pytestmark = pytest.mark.integration


def worker_pids(server: Twistd) -> list[int]:
    return sorted(w["pid"] for w in status(server)["workers"])


@pytest.mark.parametrize("how", ["command", "SIGUSR2"])
def test_upgrade_with_workers_under_load_drops_nothing(tmp_path, how, monkeypatch):
    """
    Two workers; clients from four source addresses connect and echo
    continuously through the upgrade (C{twisted-sock upgrade FILE}, or
    C{SIGUSR2}): none is refused or reset and none loses a byte; a
    connection held from before still echoes on the old generation; the
    pid file names the new main process; the new generation has two new
    workers, and each source address reaches the worker the reuseport hash
    names (the group's cBPF program survives the upgrade); systemd is told
    C{MAINPID=} the new main process; the old main process exits 0.
    """
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(60)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    config = write_config(tmp_path, workers=2)
    pidfile = tmp_path / "twistd.pid"
    server = Twistd("-c", str(config), pidfile=str(pidfile))
    new_pid = 0
    load = None
    try:
        server.wait_for(READY, 60)
        port = server.port("data")
        before = worker_pids(server)
        held = hold(port, SOURCES[:1])[0]
        load = Load(port, sources=SOURCES[1:5], limit=200000)
        load.wait_for(200)
        new_pid = upgrade_by(how, server, config)
        messages = []
        while f"MAINPID={new_pid}" not in messages:
            messages.append(notify.recv(4096).decode())
        load.wait_for(500)
        load.stop()
        assert load.failed == [], f"{len(load.failed)} of {load.attempted} failed: {load.failed[:5]}"
        assert pidfile.read_text().strip() == str(new_pid)
        assert ask(held, b"after the upgrade" * 100) == b"after the upgrade" * 100
        held.close()
        assert server.proc.wait(timeout=90) == 0
        after = worker_pids(server)
        assert len(after) == 2 and not set(after) & set(before) and new_pid not in after
        held = hold(port, SOURCES)
        try:
            wanted = wanted_spread()
            assert until(lambda: spread(server) == wanted), spread(server)
        finally:
            for s in held:
                s.close()
        assert pidfile.read_text().strip() == str(new_pid)
    finally:
        notify.close()
        if load is not None:
            load.stop()
        if new_pid:
            end(new_pid)
        if server.proc.poll() is None:
            server.stop()


@pytest.mark.parametrize(("change", "reason"), [
    ("not toml =\n", "not valid TOML"),
    ("workers = 3", "the number of workers cannot change in an upgrade"),
    ("workers = 1", "the number of workers cannot change in an upgrade"),
])
def test_failed_new_generation_leaves_the_old_serving(tmp_path, change, reason):
    """
    A new generation that cannot start -- a file that does not parse, or
    one that changes the number of workers (to 3, or to a single process)
    -- exits; C{twisted-sock upgrade} exits 1 with its reason in one line;
    the old main process and the same two workers still serve.
    """
    config = write_config(tmp_path, drain_timeout=5, workers=2)
    server = Twistd("-c", str(config))
    try:
        server.wait_for(READY, 60)
        port = server.port("data")
        before = worker_pids(server)
        good = config.read_text()
        if change.startswith("workers"):
            config.write_text(good.replace("workers = 2", change))
        else:
            config.write_text(good + "\n" + change)
        done = run(TWISTED_SOCK, "upgrade", str(tmp_path / "admin.sock"))
        assert done.returncode == 1, done.stdout + done.stderr
        line = done.stdout.strip()
        assert line.startswith("error: upgrade failed, still serving: the new generation failed: "), line
        assert reason in line and "\n" not in line and "Traceback" not in done.stdout + done.stderr
        assert server.proc.poll() is None
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            assert ask(s, b"still here") == b"still here"
        assert worker_pids(server) == before
    finally:
        if server.proc.poll() is None:
            server.stop()


def test_new_generation_whose_worker_fails_leaves_the_old_intact(tmp_path, monkeypatch):
    """
    A new generation whose second worker cannot start while its first
    already serves: the upgrade fails at once with one line naming the
    worker; the old generation kills the new main process, and the new
    worker, orphaned, stops without shutting down or filtering the sockets
    it shared with the old generation: the old main process and its two
    workers still serve, each source address on the worker the reuseport
    hash names.
    """
    marker = tmp_path / "fail-worker-1"
    monkeypatch.setenv("TWISTED_SOCK_TEST_FAIL_WORKER", str(marker))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    config = write_config(tmp_path, drain_timeout=5, workers=2)
    config.write_text(config.read_text() + 'handler = "tests.integration.worker_fails:make"\n')
    server = Twistd("-c", str(config))
    try:
        server.wait_for(READY, 60)
        port = server.port("data")
        before = worker_pids(server)
        marker.touch()
        result: list[Any] = []
        upgrading = threading.Thread(target=lambda: result.append(run(TWISTED_SOCK, "upgrade", str(config))))
        upgrading.start()
        line = server.wait_for("worker 0 ready", 60)  # the new generation's first worker serves
        new_worker = int(re.findall(r"worker 0 ready \(pid (\d+)\)", line)[0])
        (tmp_path / "fail-worker-1.go").touch()
        upgrading.join(120)
        done = result[0]
        assert done.returncode == 1, done.stdout + done.stderr
        assert done.stdout.startswith("error: upgrade failed, still serving: the new generation failed: "
                                      "worker 1 (pid "), done.stdout
        assert "ended before it was ready" in done.stdout and "\n" not in done.stdout.strip()
        assert until(lambda: gone(new_worker))
        assert server.proc.poll() is None and worker_pids(server) == before
        held = hold(port, SOURCES)
        try:
            wanted = wanted_spread()
            assert until(lambda: spread(server) == wanted), spread(server)
        finally:
            for s in held:
                s.close()
    finally:
        if server.proc.poll() is None:
            server.stop()
