"""
The C{twisted-sock} command: C{check FILE} validates a configuration and
prints every listener it would open.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from twisted_sock.errors import SockError


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
            if sock.protocol == "udp":
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
            material = sock.tls.material  # type: ignore[union-attr]
            print(f"  TLS certificate {material.subject}, SHA-256 {material.fingerprint}")
        for spec in plan:
            if spec.socket == sock.name:
                print(f"  {spec.label:<5} {spec}")
        if mode == "none":
            print("  warning: incoming = 'none' refuses every connection")
        for warning in sock.warnings:
            print(f"  warning: {warning}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="twisted-sock", description="Tools for twisted-sock configurations."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = sub.add_parser("check", help="validate a configuration file and list its listeners")
    check.add_argument("file", help="the TOML configuration file")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return _check(args.file)
    except SockError as e:
        print(f"twisted-sock: {e}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
