"""
The C{twisted-sock} command. One function per subcommand, listed in
L{COMMANDS}: C{check FILE} validates a configuration and prints every
listener it would open; C{connect} is a netcat-like client (SPEC section 3).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from twisted.python.failure import Failure

from twisted_sock.config.client import DEFAULT_TIMEOUT, ConnectOptions
from twisted_sock.errors import ConfigError, SockError
from twisted_sock.reasons import ShutdownReason


def _check(path: str) -> int:
    from twisted.web.resource import Resource

    from twisted_sock.config.loader import load_config
    from twisted_sock.errors import ConfigError
    from twisted_sock.handlers import datagram_protocols, handler_factory, http_resource
    from twisted_sock.net.interfaces import (
        ipv6_available,
        plan_service,
        system_broadcasts,
        system_interfaces,
    )

    config = load_config(path)
    for sock in config.sockets:
        try:
            if (sock.protocol == "udp" and not sock.udp_sessions) or sock.datagram:
                datagram_protocols(sock.handler, 1, socket=sock.name)
            else:
                handler_factory(sock.handler, socket=sock.name)
                http_resource(sock.http, Resource(), socket=sock.name)
        except ConfigError as e:
            raise e.located(file=path) from None
    try:
        plan = plan_service(config.sockets, system_interfaces(), ipv6_available(), system_broadcasts())
    except SockError as e:
        raise e.located(file=path) if isinstance(e, ConfigError) else e from None
    master = "enabled" if config.incoming_enabled else "DISABLED (master switch off)"
    print(f"{path}: ok; incoming {master}; {len(config.sockets)} socket(s), {len(plan)} listener(s)")
    for sock in config.sockets:
        mode = sock.incoming.value  # type: ignore[union-attr]
        print(f"socket {sock.name} ({sock.protocol}, incoming {mode}, handler {sock.handler}, "
              f"http {sock.http})")
        if sock.tls is not None:
            for line in sock.tls.certificate_lines():  # type: ignore[union-attr]
                print(f"  {line}")
        for spec in plan:
            if spec.socket == sock.name:
                print(f"  {spec.label:<5} {spec}")
        for endpoint in sock.listen:
            if endpoint.kind == "systemd":  # not planned: the address is read from the socket at start
                print(f"  {endpoint.text}: the socket systemd passes (its address is read at start)")
        if mode == "none":
            print("  warning: incoming = 'none' refuses every connection")
        for warning in sock.warnings:
            print(f"  warning: {warning}")
    return 0


# --------------------------------------------------------------------------
# twisted-sock connect

#: Option key of L{ClientTLS} / L{ConnectOptions} -> the flag that sets it.
CONNECT_FLAGS = {
    "ca": "--ca",
    "certificate": "--cert",
    "private_key": "--key",
    "server_name": "--server-name",
    "alpn": "--alpn",
    "local_address": "--local-address",
    "local_port": "--local-port",
    "broadcast": "--broadcast",
    "timeout": "--timeout",
    "tls": "--tls",
}

#: Flags that only make sense with --tls or --starttls.
_TLS_ONLY = (("ca", "--ca"), ("cert", "--cert"), ("key", "--key"), ("server_name", "--server-name"),
             ("alpn", "--alpn"), ("no_verify", "--no-verify"))


def _connect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("address", nargs="?", metavar="HOST:PORT",
                        help="where to connect: host:port, [v6]:port, udp:host:port or unix:/path")
    parser.add_argument("--tls", action="store_true", help="start TLS at once")
    parser.add_argument("--starttls", action="store_true",
                        help="send STARTTLS, wait for READY, then start TLS")
    parser.add_argument("--alpn", metavar="L", help="ALPN protocols to offer, e.g. h2,http/1.1 "
                        "(the negotiated one is printed on standard error)")
    parser.add_argument("--ca", metavar="FILE", help="CA certificates (PEM) to verify the server "
                        "against [default: the system trust store]")
    parser.add_argument("--cert", metavar="FILE", help="client certificate (PEM), with --key")
    parser.add_argument("--key", metavar="FILE", help="the client certificate's private key (PEM)")
    parser.add_argument("--server-name", metavar="NAME",
                        help="the name sent as SNI and verified [default: the host]")
    parser.add_argument("--no-verify", action="store_true",
                        help="do not verify the server certificate (explicit opt-out)")
    parser.add_argument("--udp", action="store_true", help="UDP: each line of input is one datagram")
    parser.add_argument("--broadcast", action="store_true",
                        help="UDP: allow sending to a broadcast address (SO_BROADCAST)")
    parser.add_argument("--unix", metavar="PATH", help="connect to a UNIX socket (@name: abstract)")
    parser.add_argument("--local-address", metavar="ADDR", help="local IP address to bind")
    parser.add_argument("--local-port", metavar="PORT", help="local port to bind (Tibbo sock.outport)")
    parser.add_argument("--timeout", metavar="SECONDS", default=DEFAULT_TIMEOUT,
                        help=f"seconds to connect, including STARTTLS and the handshake "
                        f"[default: {DEFAULT_TIMEOUT:g}]")
    parser.add_argument("--wait", metavar="SECONDS", default="1",
                        help="UDP: after the end of input, seconds to wait for replies [default: 1]")


def _flag_error(error: ConfigError) -> ConfigError:
    flag = CONNECT_FLAGS.get(error.key or "")
    if flag is None:
        return error
    if error.has_value:
        return ConfigError(error.problem, key=flag, value=error.value)
    return ConfigError(error.problem, key=flag)


def connect_options(args: argparse.Namespace) -> tuple[ConnectOptions, float]:
    """
    The validated L{ConnectOptions} of C{twisted-sock connect}'s arguments,
    and the C{--wait} seconds.

    @raise ConfigError: bad input, naming the flag (or the address, prefixed
        with C{ADDRESS_INVALID}).
    """
    from twisted_sock.config.address import parse_address
    from twisted_sock.config.client import ClientTLS

    if args.unix is not None and args.address is not None:
        raise ConfigError("give HOST:PORT or --unix PATH, not both", key="--unix")
    if args.unix is None and args.address is None:
        raise ConfigError("give HOST:PORT (or --unix PATH)")
    if args.unix is not None and args.udp:
        raise ConfigError("--udp cannot be mixed with --unix", key="--udp")
    text = args.address if args.unix is None else "unix:" + args.unix
    try:
        target = parse_address(text, "udp" if args.udp else None)
    except ValueError as e:
        raise ConfigError(f"{ShutdownReason.ADDRESS_INVALID.name}: {text!r}: {e}") from None
    tls = None
    if args.tls or args.starttls:
        if args.no_verify and args.ca is not None:
            raise ConfigError("--no-verify cannot be mixed with --ca", key="--no-verify")
        try:
            tls = ClientTLS(starttls=args.starttls, verify=not args.no_verify, ca=args.ca,
                            certificate=args.cert, private_key=args.key, server_name=args.server_name,
                            alpn=args.alpn or ())
        except ConfigError as e:
            raise _flag_error(e) from None
    else:
        for attr, flag in _TLS_ONLY:
            if getattr(args, attr) not in (None, False):
                raise ConfigError("needs --tls or --starttls", key=flag)
    try:
        wait = float(args.wait)
        if not 0 <= wait < float("inf"):
            raise ValueError
    except ValueError:
        raise ConfigError("must be a number of seconds, 0 or more", key="--wait", value=args.wait) from None
    try:
        options = ConnectOptions(target, local_address=args.local_address, local_port=args.local_port,
                                 timeout=args.timeout, tls=tls, broadcast=args.broadcast)
    except ConfigError as e:
        raise _flag_error(e) from None
    return options, wait


def _connect(args: argparse.Namespace) -> int:
    options, wait = connect_options(args)
    from twisted_sock.client.netcat import run_connect

    def say(line: str) -> None:
        print(f"twisted-sock: {line}", file=sys.stderr, flush=True)

    return _run_reactor(lambda reactor: run_connect(
        reactor, options, show_alpn=bool(args.alpn), wait=wait,
        stdout=sys.stdout.buffer, say=say))


def _run_reactor(main: Callable[[Any], Coroutine[Any, Any, int]]) -> int:
    """
    Run the global reactor until C{main(reactor)} is done; its result is
    the exit status (130 when interrupted).
    """
    from twisted.internet import defer, reactor

    outcome: list[Any] = []

    def start() -> None:
        done = defer.ensureDeferred(main(reactor))

        def finished(result: Any) -> None:
            outcome.append(result)
            reactor.stop()

        done.addBoth(finished)

    reactor.callWhenRunning(start)
    reactor.run()
    if not outcome:
        return 130
    result = outcome[0]
    if isinstance(result, Failure):
        print(f"twisted-sock: {result.getErrorMessage()}", file=sys.stderr)
        return 1
    return int(result)


# --------------------------------------------------------------------------
# the command table


@dataclass(frozen=True)
class Command:
    """
    One subcommand: its name, one line of help, a function adding its
    arguments to its parser, and the function running it (returning the
    exit status; a L{SockError} it raises is printed as one line, status 2).
    """

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _admin_path(target: str) -> str:
    """
    The admin socket named by C{target}: the socket itself, or the
    configuration file whose C{[sock] admin_socket} names it.
    """
    import os
    import stat

    from twisted_sock.config.loader import load_config
    from twisted_sock.errors import ConfigError

    if target.startswith("@"):
        return target
    try:
        if stat.S_ISSOCK(os.stat(target).st_mode):
            return target
    except FileNotFoundError:
        raise ConfigError("no such file", file=target) from None
    config = load_config(target)
    if config.admin_socket is None:
        raise ConfigError("has no admin_socket in [sock]", file=target)
    return config.admin_socket


def _admin(command: str, target: str, timeout: float) -> int:
    """
    Send one command to a running service's admin socket and print the
    answer; exit status 0 for an "ok"/JSON answer, 1 otherwise.
    """
    import socket

    from twisted_sock.net.unix import socket_address

    path = _admin_path(target)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(socket_address(path))
            s.sendall(command.encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
    except OSError as e:
        print(f"twisted-sock: {path}: cannot reach the admin socket: {e.strerror or e}", file=sys.stderr)
        return 1
    text = answer.decode("utf-8", "replace").strip()
    if command == "status" and text.startswith("{"):
        import json

        print(json.dumps(json.loads(text), indent=2))
        return 0
    print(text)
    return 0 if text.startswith("ok") else 1


def _admin_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="CONFIG_OR_SOCKET",
                        help="the configuration file (its [sock] admin_socket) or the admin socket")
    parser.add_argument("--timeout", type=float, default=90.0,
                        help="seconds to wait for the answer [default: 90]")


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the TOML configuration file")


COMMANDS: tuple[Command, ...] = (
    Command("check", "validate a configuration file and list its listeners", _check_arguments,
            lambda args: _check(args.file)),
    Command("connect", "connect to a server: standard input to it, its answers to standard output",
            _connect_arguments, _connect),
    Command("reload", "make a running service re-read its configuration file (via its admin socket)",
            _admin_arguments, lambda args: _admin("reload", args.target, args.timeout)),
    Command("status", "print a running service's status as JSON (via its admin socket)",
            _admin_arguments, lambda args: _admin("status", args.target, args.timeout)),
    Command("upgrade", "start a new generation of a running service on its listening sockets, then "
            "drain and stop the old one (via its admin socket)",
            _admin_arguments, lambda args: _admin("upgrade", args.target, args.timeout)),
)


class _Parser(argparse.ArgumentParser):
    """
    Usage errors are one line (and exit status 2), like every other error.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


class _Version(argparse.Action):
    """
    C{--version}: the versions, exit status 0.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> NoReturn:
        from twisted_sock.version import version_text

        sys.stdout.write(version_text())
        parser.exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="twisted-sock", description="Tools for twisted-sock.")
    parser.add_argument("--version", action=_Version, help="print the versions of twisted-sock, "
                        "Twisted and OpenSSL and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        command.arguments(child)
        child.set_defaults(run=command.run)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # e.g. twisted-sock status ... | head
        sys.stderr.close()
        return 0
    except SockError as e:
        print(f"twisted-sock: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
