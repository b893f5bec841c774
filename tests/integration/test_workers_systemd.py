"""
systemd with workers, for real: the main process takes a socket-activated
TCP socket that has C{SO_REUSEPORT} (a C{.socket} unit's C{ReusePort=yes})
as the first of its group and opens the others beside it (the peer
affinity holds); without C{SO_REUSEPORT} it is one line and exit 1. A
UNIX socket's file stays systemd's. A C{systemd:} entry (C{--listen
systemd:domain=INET:index=0}) takes the socket it names the same way. It
says C{READY=1} only once every worker serves; the workers do not see the
activation variables.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
from pathlib import Path

import pytest

from tests.integration.clients import ask, exchange
from tests.integration.conftest import free_port
from tests.integration.test_systemd import TIMEOUT, Activated, assert_refused, config_for
from tests.integration.test_systemd_listen import Activated as ActivatedWith
from tests.integration.test_systemd_listen import activated_config, connect, upgrade
from tests.integration.test_twistd import TWISTED_SOCK, Twistd, ports_free, run
from tests.integration.test_upgrade import end
from tests.integration.test_workers import READY, SOURCES, hold, spread, status, until, wanted_spread

pytestmark = pytest.mark.integration


def environment(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [item.decode().partition("=") for item in f.read().split(b"\0") if item]
    return {name: value for name, _, value in pairs}


def activated_with(config: Path | None, sock: socket.socket, *args: str) -> Twistd:
    """
    C{twistd -n sock -c CONFIG ARGS} (or C{ARGS} alone) started as systemd
    would: C{sock} as descriptor 3, C{LISTEN_PID} its own pid,
    C{LISTEN_FDS=1}.
    """
    fd = sock.fileno()
    script = (f"import os, sys; os.dup2({fd}, 3); os.close({fd}); "
              "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', LISTEN_FDNAMES='data'); "
              "os.execv(sys.argv[1], sys.argv[1:])")
    given = ("-c", str(config)) if config is not None else ()
    return Twistd(*given, *args, prefix=(sys.executable, "-c", script), pass_fds=(fd,))


def reuseport_listening() -> socket.socket:
    """
    A TCP socket listening on a free port of 127.0.0.1 with C{SO_REUSEPORT}
    (a C{.socket} unit's C{ReusePort=yes}).
    """
    listening = socket.socket()
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listening.bind(("127.0.0.1", 0))
    listening.listen(64)
    return listening


def test_reuseport_socket_serves_with_workers_and_notify(tmp_path, monkeypatch):
    """
    An inherited listening socket with C{SO_REUSEPORT} (holding a
    connection from before the start) is served by two workers, not bound
    again: the early connection echoes, and 30 source addresses spread
    over the workers as the reuseport hash says (the inherited socket is
    the group's first). C{READY=1} comes once both workers serve (its
    C{STATUS=} counts 2 of 2 workers); C{RELOADING=1} then C{READY=1}
    around C{SIGHUP}; C{STOPPING=1} on C{SIGTERM}. No worker has
    C{LISTEN_PID}, C{LISTEN_FDS} or C{NOTIFY_SOCKET} in its environment.
    """
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(TIMEOUT)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    listening = reuseport_listening()
    port = listening.getsockname()[1]
    early = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    early.sendall(b"queued before start")
    server = activated_with(config_for(tmp_path, port, workers=2, http=True), listening)
    listening.close()
    try:
        ready = notify.recv(4096).decode()
        assert ready.startswith("READY=1\nSTATUS=1 socket(s), ") and ready.endswith("; 2 of 2 workers"), ready
        server.wait_for(READY, 10)  # logged before READY=1 was sent
        assert early.recv(100) == b"queued before start"
        early.close()
        assert "1 listener(s) on inherited sockets" in "".join(server.log)
        held = hold(port, SOURCES)
        try:
            wanted = wanted_spread()
            assert until(lambda: spread(server) == wanted), spread(server)
        finally:
            for s in held:
                s.close()
        for row in status(server)["workers"]:
            env = environment(row["pid"])
            assert not {"LISTEN_PID", "LISTEN_FDS", "NOTIFY_SOCKET"} & set(env), sorted(env)
        server.proc.send_signal(signal.SIGHUP)
        reloading = notify.recv(4096).decode().split("\n")
        assert reloading[0] == "RELOADING=1" and reloading[1].startswith("MONOTONIC_USEC="), reloading
        assert notify.recv(4096).decode().startswith("READY=1\n")
        server.proc.send_signal(signal.SIGTERM)
        assert notify.recv(4096).decode() == "STOPPING=1"
        assert server.proc.wait(TIMEOUT) == 0
    finally:
        notify.close()
        if server.proc.poll() is None:
            server.stop()
    assert "Traceback" not in "".join(server.log)


def test_inherited_socket_without_reuseport_is_one_line(tmp_path):
    """
    With two workers, the socket systemd-socket-activate passes (no
    C{SO_REUSEPORT}): one line naming it and C{ReusePort=yes}, exit 1.
    """
    port = free_port()
    expected_line = (f"twistd sock: systemd socket activation: fd 3: tcp 127.0.0.1:{port} has no "
                     "SO_REUSEPORT: with workers = 2 every worker needs a socket of its own "
                     "(set ReusePort=yes in the .socket unit)")
    assert_refused(Activated(tmp_path, port, config_for(tmp_path, port, workers=2)), port, expected_line)


def test_unix_socket_from_systemd_keeps_its_file(tmp_path):
    """
    With two workers, a UNIX stream socket systemd passed is served (not
    bound again), and stopping leaves its file in place (systemd made it).
    """
    path = tmp_path / "activated.sock"
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(path))
    listening.listen(16)
    config = tmp_path / "sock.toml"
    config.write_text(f'[sock]\nworkers = 2\n\n[[socket]]\nname = "local"\nprotocol = "unix"\n'
                      f'path = "{path}"\n')
    server = activated_with(config, listening)
    listening.close()
    try:
        server.wait_for(READY, 60)
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(TIMEOUT)
            s.connect(str(path))
            assert ask(s, b"activated") == b"activated"
        log = server.stop()
        assert server.proc.returncode == 0
    finally:
        if server.proc.poll() is None:
            server.stop()
    assert "1 listener(s) on inherited sockets" in log, log
    assert path.is_socket()


def test_systemd_endpoint_with_workers_keeps_affinity_and_decision(tmp_path):
    """
    C{--workers 2 --listen systemd:domain=INET:index=0} on a passed socket
    with C{SO_REUSEPORT}: it is the first socket of the listener's group
    (the early connection echoes), 30 source addresses of the allowed
    network spread over the two worker pids as the reuseport hash says,
    each address to one worker; a source outside C{target_ip} gets a
    reset, counted as refused; the status lists the listener with the
    address and port read back from the socket.
    """
    listening = reuseport_listening()
    port = listening.getsockname()[1]
    early = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    server = activated_with(None, listening, "--workers", "2", "--listen", "systemd:domain=INET:index=0",
                            "--incoming", "specific-ip-any-port", "--target-ip", "127.0.0.0/27",
                            "--http", "0", "--interfaces", "lo")
    listening.close()
    try:
        server.wait_for(READY, 60)
        assert ask(early, b"queued before start") == b"queued before start"
        early.close()
        held = hold(port, SOURCES)
        try:
            rows = status(server)["workers"]
            assert len({row["pid"] for row in rows}) == 2
            wanted = wanted_spread()
            assert until(lambda: spread(server) == wanted), spread(server)
            assert exchange("127.0.0.1", port, b"hi", ("127.0.0.40", 0)).kind == "reset"
        finally:
            for s in held:
                s.close()
        sock = status(server)["sockets"][0]
        assert sock["refused"] == 1
        listeners = [(x["address"], x["port"], x["mode"]) for x in sock["listeners"]]
        assert ("127.0.0.1", port, "data") in listeners, listeners
        log = server.stop()
        assert server.proc.returncode == 0
    finally:
        if server.proc.poll() is None:
            server.stop()
    assert "1 listener(s) on inherited sockets" in log, log
    assert "Traceback" not in log


def test_systemd_endpoint_without_reuseport_is_one_line(tmp_path):
    """
    C{--workers 2 --listen systemd:domain=INET:index=0} on the socket
    systemd-socket-activate passes (no C{SO_REUSEPORT}): the line naming
    C{ReusePort=yes}, exit 1, nothing left listening.
    """
    port = free_port()
    server = ActivatedWith(f"127.0.0.1:{port}", "--workers", "2", "--listen", "systemd:domain=INET:index=0",
                       start=False, cwd=str(tmp_path))
    status, lines = server.failed()
    assert status == 1, lines
    assert (f"twistd sock: systemd socket activation: fd 3: tcp 127.0.0.1:{port} has no SO_REUSEPORT: "
            "with workers = 2 every worker needs a socket of its own (set ReusePort=yes in the .socket "
            "unit)\n") in lines, lines
    assert "Traceback" not in "".join(lines)
    assert ports_free(port)


def test_unix_systemd_endpoint_with_workers(tmp_path):
    """
    C{--workers 2 --listen systemd:domain=UNIX:index=0}: both workers
    serve the passed UNIX socket (the early connection and new ones echo),
    and stopping leaves its file, which systemd made, in place.
    """
    path = str(tmp_path / "activated.sock")
    server = ActivatedWith(path, "--workers", "2", "--listen", "systemd:domain=UNIX:index=0",
                           cwd=str(tmp_path))
    try:
        server.wait_for(READY, 60)
        assert server.listeners[("unix", "unix+data")] == path
        assert ask(server.early, b"early") == b"early"
        for n in range(4):
            with connect(path) as s:
                assert ask(s, b"hello %d" % n) == b"hello %d" % n
        server.early.close()
        log = server.stop()
        assert server.proc.returncode == 0
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    assert "1 listener(s) on inherited sockets" in log, log
    assert "Traceback" not in log
    assert Path(path).is_socket()


def test_systemd_endpoint_with_workers_reload_and_upgrade(tmp_path):
    """
    C{listen = ["systemd:domain=INET:index=0"]} with two workers, on a
    passed socket with C{SO_REUSEPORT}: C{twisted-sock reload} keeps it (a
    connection held from before echoes after it, and a new one);
    C{twisted-sock upgrade} hands its group to the next generation (whose
    workers resolve the entry from the handed-on descriptions), which
    serves it with the peer affinity of the reuseport hash and lists it in
    its status; the old generation exits 0.
    """
    listening = reuseport_listening()
    port = listening.getsockname()[1]
    config = activated_config(tmp_path, """
        [[socket]]
        name = "data"
        incoming = "any-ip-any-port"
        interfaces = "lo"
        http_ports = "0"
        listen = ["systemd:domain=INET:index=0"]
    """, workers=2)
    server = activated_with(config, listening)
    listening.close()
    new_pid = 0
    try:
        server.wait_for(READY, 60)
        held = hold(port, SOURCES[:1])[0]
        done = run(TWISTED_SOCK, "reload", str(config))
        assert done.stdout.startswith("ok: reloaded"), done.stdout + done.stderr
        assert ask(held, b"after reload") == b"after reload"
        held.close()
        assert exchange("127.0.0.1", port, b"new after reload").data == b"new after reload"
        before = {w["pid"] for w in status(server)["workers"]}
        new_pid = upgrade(config)
        assert server.proc.wait(timeout=90) == 0
        after = {w["pid"] for w in status(server)["workers"]}
        assert len(after) == 2 and not after & before, (before, after)
        held_sources = hold(port, SOURCES)
        try:
            wanted = wanted_spread()
            assert until(lambda: spread(server) == wanted), spread(server)
        finally:
            for s in held_sources:
                s.close()
        answer = json.loads(run(TWISTED_SOCK, "status", str(config)).stdout)
        assert answer["pid"] == new_pid
        listeners = [(x["address"], x["port"], x["mode"]) for x in answer["sockets"][0]["listeners"]]
        assert ("127.0.0.1", port, "data") in listeners, listeners
    finally:
        if new_pid:
            end(new_pid)
        if server.proc.poll() is None:
            server.stop()
    server._reader.join(TIMEOUT)  # the new generation wrote to the same output until it ended
    log = "".join(server.log)
    assert "Traceback" not in log
    assert "twistd sock: worker" not in log, log
