"""
Tests for the logging settings and events: C{[sock] log_format} and
C{http_access_log} (file, flag, bad values), C{--version}, and the rate
limit on connection ends by failed handshakes and resets.
"""

from __future__ import annotations

import textwrap
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from twisted_sock import __version__
from twisted_sock.config.loader import load_config
from twisted_sock.config.model import ServiceConfig, SocketConfig
from twisted_sock.errors import ConfigError
from twisted_sock.net.connection import ConnectionRecord
from twisted_sock.net.connlog import log_connection
from twisted_sock.net.state import MasterSwitch, SocketState
from twisted_sock.reasons import ShutdownReason
from twisted_sock.tap import Options, with_log_format


def _write(tmp_path: Any, text: str) -> str:
    path = tmp_path / "sock.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_log_keys_from_file(tmp_path):
    """
    C{[sock] log_format} and C{http_access_log} are read from the file;
    their defaults are text and true.
    """
    body = """
        [[socket]]
        name = "s"
        local_ports = [0]
        interfaces = "lo"
    """
    default = load_config(_write(tmp_path, body))
    assert (default.log_format, default.http_access_log) == ("text", True)
    config = load_config(_write(tmp_path, '[sock]\nlog_format = "json"\nhttp_access_log = false\n' + body))
    assert (config.log_format, config.http_access_log) == ("json", False)


@pytest.mark.parametrize("key, value, problem", [
    ("log_format", '"xml"', "sock.log_format = 'xml': unknown log_format 'xml' (choose text or json)"),
    ("http_access_log", '"maybe"', "sock.http_access_log = 'maybe': http_access_log must be true or false"),
])
def test_bad_log_keys_one_line(tmp_path, key, value, problem):
    """
    An unknown log_format or a non-boolean http_access_log is one line
    naming the file and the key.
    """
    path = _write(tmp_path, f"[sock]\n{key} = {value}\n[[socket]]\nlocal_ports = [0]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: {problem}"


def test_log_format_flag():
    """
    C{--log-format} replaces the configuration's log_format (also with
    --config or the embedded default); a bad value names the flag.
    """
    options = Options()
    options.parseOptions(["--log-format", "json", "--tcp", "0"])
    assert options.given()["log-format"] == "json"
    assert with_log_format(ServiceConfig(()), "json").log_format == "json"
    assert with_log_format(ServiceConfig((), log_format="json"), None).log_format == "json"
    with pytest.raises(ConfigError) as caught:
        with_log_format(ServiceConfig(()), "yaml")
    assert str(caught.value) == "--log-format = 'yaml': unknown log_format 'yaml' (choose text or json)"


def test_twistd_sock_version(capsys):
    """
    C{twistd sock --version} prints the product's version first, then
    Twisted's and OpenSSL's, and exits 0.
    """
    with pytest.raises(SystemExit) as caught:
        Options().parseOptions(["--version"])
    assert caught.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"twisted-sock {__version__}"
    assert lines[1].startswith("Twisted ") and "SSL" in lines[2]


def test_cli_version(capsys):
    """
    C{twisted-sock --version}: the same lines, exit status 0 (no command
    needed).
    """
    from twisted_sock.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.splitlines()[0] == f"twisted-sock {__version__}"


def _transport(state: SocketState, reason: ShutdownReason, n: int) -> Any:
    record = ConnectionRecord(reason=reason, started=0.0)
    record.tls = True
    return SimpleNamespace(
        server=SimpleNamespace(sock_port=443, sock_mode="data", sock_log_cache=None),
        client=("127.0.0.1", 1000 + n), sock=record, reactor=state.clock, sock_state=state)


@pytest.mark.parametrize("reason, limited", [
    (ShutdownReason.TLS_HANDSHAKE_FAILED, True),
    (ShutdownReason.LOST, True),
    (ShutdownReason.NORMAL, False),
    (ShutdownReason.BY_PEER, False),
])
def test_connection_end_floods_are_bounded(reason, limited):
    """
    1000 connections ended in one second by failed handshakes or resets
    make fewer than 100 events (the first ones each, then one summary a
    second with the count); normal ends are each logged.
    """
    clock = Clock()
    state = SocketState(SocketConfig(name="s", local_ports=[0], interfaces="lo"), MasterSwitch(), clock)
    seen: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        for n in range(1000):
            log_connection(_transport(state, reason, n), (0, 0))
            clock.advance(0.001)
        clock.advance(1.0)
        clock.advance(1.0)
        state.stop_logs()
    finally:
        globalLogPublisher.removeObserver(seen.append)
    ends = [e for e in seen if e.get("connection_ended")]
    summaries = [e for e in seen if "suppressed" in e]
    if limited:
        assert len(seen) < 100
        assert ends[0]["reason"] == reason.value and ends[0]["peer_port"] == 1000
        assert len(ends) + sum(e["suppressed"] for e in summaries) == 1000
    else:
        assert len(ends) == 1000 and not summaries


class RunningClock(Clock):
    """
    A clock that says the reactor runs.
    """

    running = True


def test_connection_ends_logged_at_the_end_of_the_turn():
    """
    While the reactor runs, the ends of one turn are logged together when
    it ends, in order, each with its own end time; C{flush} (called when a
    drain ends) logs them at once.
    """
    clock = RunningClock()
    state = SocketState(SocketConfig(name="s", local_ports=[0], interfaces="lo"), MasterSwitch(), clock)
    seen: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        state.ends.add(_transport(state, ShutdownReason.NORMAL, 0), (1, 2))
        clock.advance(0.5)  # the turn ends: logged
        for n in (1, 2):
            state.ends.add(_transport(state, ShutdownReason.NORMAL, n), (1, 2))
        assert [e["peer_port"] for e in seen if e.get("connection_ended")] == [1000]
        clock.advance(0)
        ended = [e for e in seen if e.get("connection_ended")]
        assert [(e["peer_port"], e["duration"]) for e in ended] == [(1000, 0.0), (1001, 0.5), (1002, 0.5)]
        state.ends.add(_transport(state, ShutdownReason.NORMAL, 3), (1, 2))
        state.ends.flush()
        assert seen[-1]["peer_port"] == 1003
        assert not clock.getDelayedCalls()
    finally:
        globalLogPublisher.removeObserver(seen.append)


def test_refusal_fields_built_only_when_logged():
    """
    A refusal's text and fields are built only for the refusals that are
    logged: in a flood, the suppressed ones cost neither.
    """
    from twisted_sock.policy.ratelimit import RateLimitedLog

    built: list[int] = []
    emitted: list[tuple[Any, ...]] = []
    limited = RateLimitedLog(lambda text, n, **fields: emitted.append((text, n, fields)), Clock(), burst=3)
    for n in range(100):
        limited.event(lambda n=n: (built.append(n) or f"refused {n}", {"peer_port": n}))
    assert built == [0, 1, 2]
    assert emitted == [(f"refused {n}", 0, {"peer_port": n}) for n in range(3)]
