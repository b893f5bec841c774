"""
C{twistd -n sock}: the options and C{makeService}, nothing else.

Bad input never reaches twistd's usage handler (which exits 0 on some
Twisted versions): it ends the process with one line on standard error and
exit status 2 (bad options or configuration) or 1 (start-up failed).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from typing import Any, NoReturn

from twisted.application.service import IService
from twisted.logger import Logger
from twisted.python import usage

from twisted_sock.config.flags import as_flag_error, config_from_flags
from twisted_sock.config.model import ServiceConfig
from twisted_sock.errors import ConfigError, SockError
from twisted_sock.logs.twistd import install_observer
from twisted_sock.ops import upgrade
from twisted_sock.ops.lifecycle import Operated
from twisted_sock.service import SockService
from twisted_sock.twisted_internals.twistd import report_start_failure
from twisted_sock.version import version_text, versions
from twisted_sock.workers.handover import OperatedSupervisor
from twisted_sock.workers.supervisor import Supervisor, with_workers

log = Logger(namespace="twisted_sock")

_FLAGS = [
    ["config", "c", None, "The configuration file (TOML). Not to be mixed with other flags."],
    ["name", None, None, "The socket's name [default: sock0]."],
    ["tcp", None, None, 'Data ports, e.g. "8001,8002" or "5000-5009".'],
    ["http", None, None, "HTTP ports (served by twisted.web)."],
    ["udp", None, None, "UDP ports (a UDP socket instead of TCP; not with --tcp/--http)."],
    ["unix", None, None, "A UNIX socket path (@name: Linux abstract namespace) instead of ports."],
    ["mode", None, None, "File mode of the --unix socket [default: 0600]."],
    ["interfaces", None, None, 'Interface names ("lo,eth0") or "*" for all addresses [default: *].'],
    ["incoming", None, None,
     "none | specific-ip-port | specific-ip-any-port | any-ip-any-port "
     "[default: none; any-ip-any-port with --unix]."],
    ["target-ip", None, None, "Allowed peer address(es)/network(s), comma-separated."],
    ["target-port", None, None, "Allowed peer port (specific-ip-port)."],
    ["handler", None, None, "echo | discard | chat | package.module:attr [default: echo]."],
    ["http-resource", None, None, "status | static:DIR | package.module:attr [default: status]."],
    ["max-connections", None, None, "Concurrent connections of the socket."],
    ["max-connections-per-ip", None, None, "Concurrent connections from one peer address."],
    ["idle-timeout", None, None, "Seconds without traffic before a connection is closed."],
    ["backlog", None, None, "Listen backlog [default: 1024]."],
    ["tls-cert", None, None, "TLS certificate (PEM, chain allowed)."],
    ["tls-key", None, None, "TLS private key (PEM)."],
    ["tls-ports", None, None, "Ports where TLS starts immediately (data ports or http ports)."],
    ["alpn", None, None, 'ALPN protocols in preference order, e.g. "h2,http/1.1".'],
    ["starttls", None, None, "STARTTLS on the plain data ports: off | command | auto [default: off]."],
    ["client-ca", None, None, "CA certificates (PEM) that client certificates must chain to."],
    ["log-format", None, None, "text | json: the log's lines [default: text; [sock] log_format]."],
    ["workers", None, None, 'Worker processes: a number or "auto" (the CPUs) [default: 1: one process].'],
]


def _exit(message: str, status: int) -> NoReturn:
    upgrade.answer(f"error {message}")  # the old generation, in an upgrade, says why
    sys.__stderr__.write(f"twistd sock: {message}\n")  # type: ignore[union-attr]
    sys.__stderr__.flush()  # type: ignore[union-attr]
    raise SystemExit(status)


class Options(usage.Options):
    """
    With no options: the embedded default (echo on 127.0.0.1:8001, status
    page on 127.0.0.1:8080). Otherwise either --config FILE, or flags that
    build one socket.
    """

    synopsis = "[--config FILE | --tcp PORTS --http PORTS | --udp PORTS | --unix PATH] [--incoming MODE ...]"
    optParameters = _FLAGS
    optFlags = [["require-client-cert", None, "Refuse TLS clients without a certificate from --client-ca."]]

    def opt_version(self) -> NoReturn:
        """
        Print the versions of twisted-sock, Twisted and OpenSSL and exit.
        """
        sys.stdout.write(version_text())
        sys.stdout.flush()
        raise SystemExit(0)

    def parseOptions(self, options: Any = None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            _exit(f"{e} (see twistd sock --help)", 2)

    def opt_listen(self, endpoint: str) -> None:
        """A Twisted endpoint: tcp:PORT[:interface=ADDR] | ssl:PORT:privateKey=K | unix:PATH |
        systemd:domain=INET:index=N (repeatable)."""
        self["listen"] = (*self.get("listen", ()), endpoint)

    def given(self) -> dict[str, Any]:
        """
        The flags actually given, by name.
        """
        names = [str(flag[0]) for flag in _FLAGS]
        given = {name: self[name] for name in names if self[name] is not None}
        if self.get("listen"):
            given["listen"] = self["listen"]
        if self["require-client-cert"]:
            given["require-client-cert"] = True
        return given


class _Observed:
    """
    Under twistd: the service's log observer (C{log_format}) instead of
    twistd's.
    """

    twistd_config: Any = None
    config: ServiceConfig
    _reactor: Any

    def setServiceParent(self, parent: Any) -> None:
        # twistd passes its application (a Componentized) here, before it
        # sets up logging: give it the service's observer (see logs.twistd).
        if self.twistd_config is not None and hasattr(parent, "setComponent"):
            install_observer(parent, self.twistd_config, self.config.log_format, self._reactor)
        super().setServiceParent(parent)  # type: ignore[misc]


class TwistdSockService(_Observed, Operated, SockService):
    """
    Under twistd, a failure to open the listeners ends the process with one
    line on standard error (and removes the pid file twistd wrote) instead
    of a traceback.
    """

    twistd_config: Any = None

    def startService(self) -> None:
        super().startService()
        # Twisted installs its own SIGTERM handler when the reactor starts:
        # replace it then.
        self._reactor.callWhenRunning(self._install_sigterm)

    def _install_sigterm(self) -> None:
        """
        SIGTERM: stop accepting, drain, exit with status 0 (Twisted's own
        handler would make the process report death by SIGTERM).
        """
        reactor = self._reactor

        def on_term(signum: int, frame: Any) -> None:
            log.info("SIGTERM: stopping gracefully")
            reactor.callFromThread(reactor.stop)

        signal.signal(signal.SIGTERM, on_term)

    def _install_sighup(self) -> None:
        """
        SIGHUP: reload the configuration file. Installed before anything
        listens, so an early SIGHUP cannot kill the process.
        """
        reactor = self._reactor

        def on_hup(signum: int, frame: Any) -> None:
            reactor.callFromThread(self.reload)

        signal.signal(signal.SIGHUP, on_hup)

    def privilegedStartService(self) -> None:
        log.info("twisted-sock {twisted_sock} (Twisted {twisted}, {openssl}) starting", **versions())
        self._install_sighup()
        try:
            super().privilegedStartService()
        except SockError as e:
            _start_failed(self.twistd_config, e)


def _start_failed(twistd_config: Any, e: SockError) -> NoReturn:
    """
    A failure to open the listeners under twistd: one line on standard
    error (and to a daemonized twistd's launcher), the pid file removed,
    exit status 1.
    """
    log.critical("{error}", error=str(e))
    config = twistd_config or {}
    if config.get("pidfile"):
        try:
            os.unlink(config["pidfile"])
        except OSError:
            pass
    report_start_failure(config, str(e))
    _exit(str(e), 1)


class TwistdSupervisor(_Observed, OperatedSupervisor, Supervisor):
    """
    With workers: the main process, failing to open its listeners as
    L{TwistdSockService} does; inherited sockets, sd_notify and upgrades
    as in L{twisted_sock.workers.handover}.
    """

    twistd_config: Any = None

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except SockError as e:
            _start_failed(self.twistd_config, e)


def makeService(options: Options) -> IService:
    given = options.given()
    log_format = given.pop("log-format", None)
    workers = given.pop("workers", None)  # workers, log-format: the flags --config takes
    service: Any
    try:
        config = with_log_format(config_from_flags(given), log_format)
        if workers is not None:
            config = with_workers(config, workers)
        if config.workers > 1:
            service = TwistdSupervisor(config, given)
        else:
            service = TwistdSockService.from_config(config)
    except ConfigError as e:
        if config_is_from_flags(given):
            e = as_flag_error(e, udp="udp" in given)
        _exit(str(e), 2)
    except SockError as e:
        _exit(str(e), 2)
    service.twistd_config = getattr(options, "parent", None)
    return service


def with_log_format(config: ServiceConfig, log_format: str | None) -> ServiceConfig:
    """
    C{config} with C{--log-format}, when given, in place of its own.
    """
    if log_format is None:
        return config
    try:
        return dataclasses.replace(config, log_format=log_format)
    except ConfigError as e:
        raise ConfigError(e.problem, key="--log-format", value=log_format) from None


def config_is_from_flags(given: dict[str, Any]) -> bool:
    return bool(given) and "config" not in given
