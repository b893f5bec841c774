"""
The benchmark servers, one per process:

    python -m bench.servers IMPL KIND [--ports N] [--max-seconds S] [--pki DIR]

IMPL is C{twisted-sock} (a L{twisted_sock.SockService}) or C{bare} (plain
C{reactor.listenTCP} / C{listenUDP}, no twisted-sock import at all). KIND is
one of L{KINDS}: C{accept}, C{refuse}, C{echo}, C{idle} (data ports),
C{http}, C{tls} (an implicit-TLS data port; C{--pki DIR} or C{$BENCH_PKI}
names a directory as L{write_pki} makes it; the other TLS kinds of
L{TLS_KINDS} are the same server, with an RSA certificate for the C{-rsa}
ones), C{udp-echo},
C{udp-refuse} (UDP that admits only 127.0.0.9; twisted-sock with its kernel
prefilter) and the twisted-sock-only variants C{accept-logs} (accept with
the per-connection log on) and C{udp-refuse-python} (no kernel prefilter).
Both implementations run the same application code from L{bench.handlers}.

Every twisted-sock server passes C{log_connections=False} (bare Twisted
logs nothing per connection), except C{accept-logs}, which measures that log.

The process opens its listeners, prints one JSON line on stdout (pid, the
IPv4 loopback port(s), how many listeners, how long opening them took) and
serves until SIGTERM, until its standard input (a pipe from the runner)
closes, or for C{--max-seconds} (default 900) at most. Everything it logs
goes to standard error, as under C{twistd}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import stat
import sys
import time
from typing import Any, NamedTuple


class TLSKind(NamedTuple):
    """
    A TLS server kind: which server certificate the server uses (a key of
    L{CERTIFICATES}) and what the generator asks of it (C{tlsgen connect
    -r}: resume the last session; C{-2}: TLS 1.2 at most). The server
    itself is the same for all: it issues tickets and resumes whatever it
    is offered.
    """

    certificate: str
    resume: bool = False
    tls12: bool = False


#: The server certificates of a bench PKI directory (L{write_pki}): the
#: certificate's and the key's file names.
CERTIFICATES = {"ecdsa": ("server.pem", "server.key"), "rsa": ("server-rsa.pem", "server-rsa.key")}
TLS_KINDS = {
    "tls": TLSKind("ecdsa"),
    "tls-resume": TLSKind("ecdsa", resume=True),
    "tls12-resume": TLSKind("ecdsa", resume=True, tls12=True),
    "tls-rsa": TLSKind("rsa"),
    "tls-rsa-resume": TLSKind("rsa", resume=True),
    "tls12-rsa-resume": TLSKind("rsa", resume=True, tls12=True),
}
IMPLS = ("twisted-sock", "bare")
KINDS = ("accept", "refuse", "echo", "idle", "http", *TLS_KINDS, "udp-echo", "udp-refuse", "accept-logs",
         "udp-refuse-python")
#: Kinds only twisted-sock has (a twisted-sock setting, no bare equivalent).
SOCK_ONLY = ("refuse", "accept-logs", "udp-refuse-python")
#: The one peer the udp-refuse servers admit; the generator sends from
#: 127.0.0.1, so every datagram is refused.
UDP_ALLOWED = "127.0.0.9"
#: twisted-sock's default backlog; the bare servers pass the same value.
BACKLOG = 1024
#: Where a block of fixed ports (--ports N > 1) is looked for: below the
#: ephemeral range (32768-60999 here), so client ports never collide.
PORT_BLOCK_RANGE = (10000, 32000)


def raise_nofile() -> int:
    """
    Raise the open-file limit as far as allowed (root may raise the hard
    limit too). Returns the soft limit in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(hard, 65536)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def port_blocks(count: int, rng: random.Random) -> list[int]:
    """
    Candidate first ports for a block of C{count} consecutive ports.
    """
    low, high = PORT_BLOCK_RANGE
    bases = list(range(low, high - count, max(count, 500)))
    rng.shuffle(bases)
    return bases


def _watch_parent(reactor: Any) -> None:
    """
    Stop when standard input (a pipe from the runner) reaches EOF: a server
    never outlives its runner.
    """
    if not stat.S_ISFIFO(os.fstat(0).st_mode):
        return
    from twisted.internet.interfaces import IReadDescriptor
    from zope.interface import implementer

    @implementer(IReadDescriptor)
    class ParentWatch:
        def fileno(self) -> int:
            return 0

        def doRead(self) -> None:
            try:
                data = os.read(0, 4096)
            except BlockingIOError:
                return
            if not data:
                reactor.removeReader(self)
                if reactor.running:
                    reactor.stop()

        def connectionLost(self, reason: Any) -> None:
            pass

        def logPrefix(self) -> str:
            return "parent-watch"

    os.set_blocking(0, False)
    reactor.addReader(ParentWatch())


#: The names the RSA certificate is valid for (make_pki's default, as the ECDSA one).
RSA_NAMES = ("localhost", "127.0.0.1", "::1")


def write_pki(directory: str) -> None:
    """
    Write the bench's PKI into C{directory}: L{twisted_sock.testing.make_pki}'s
    test CA and ECDSA P-256 server certificate (C{server.pem},
    C{server.key}), and an RSA 2048 server certificate from the same CA
    (C{server-rsa.pem}, C{server-rsa.key}). The runner makes one directory
    per run so that every server uses the same pairs.
    """
    from twisted_sock.testing import issue_server_certificate, make_pki

    pki = make_pki(directory)
    issue_server_certificate(pki, directory, "server-rsa", RSA_NAMES, use_rsa=True)


def pki_files(pki: str | None, certificate: str = "ecdsa") -> tuple[str, str]:
    """
    The server certificate and key of a TLS workload in the directory
    L{write_pki} wrote: C{certificate} is C{"ecdsa"} or C{"rsa"} (see
    L{CERTIFICATES}).
    """
    if not pki:
        raise SystemExit("the tls servers need --pki DIR (or $BENCH_PKI): a directory as "
                         "bench.servers.write_pki(DIR) writes it")
    cert, key = (os.path.join(pki, name) for name in CERTIFICATES[certificate])
    for path in (cert, key):
        if not os.path.exists(path):
            raise SystemExit(f"no {path} (bench.servers.write_pki(DIR) writes it)")
    return cert, key


def start_twisted_sock(kind: str, nports: int, reactor: Any, pki: str | None = None) -> dict[str, Any]:
    from bench.handlers import Tiny, UDPEcho, data_factory
    from twisted_sock import SocketConfig, SockService, TLSConfig

    log_connections = kind == "accept-logs"
    if log_connections:
        kind = "accept"

    def build(ports: list[int]) -> Any:
        common: dict[str, Any] = {"name": "b", "interfaces": "lo"}
        if kind in ("refuse", "udp-refuse", "udp-refuse-python"):
            # Only 127.0.0.9 may connect / send; the client uses 127.0.0.1.
            common.update(incoming="specific-ip-any-port", target_ip=UDP_ALLOWED)
        else:
            common.update(incoming="any-ip-any-port")
        service: dict[str, Any] = {"reactor": reactor, "log_connections": log_connections}
        if kind.startswith("udp-"):
            config = SocketConfig(protocol="udp", local_ports=ports, prefilter=kind != "udp-refuse-python",
                                  **common)
            # A UDP socket takes a zero-argument callable returning a DatagramProtocol.
            return SockService([config], factory=UDPEcho, **service)  # type: ignore[arg-type]
        common["backlog"] = BACKLOG
        if kind == "http":
            config = SocketConfig(http_ports=ports, **common)
            return SockService([config], http_resource=Tiny(), **service)
        if kind in TLS_KINDS:  # session tickets are on by default
            cert, key = pki_files(pki, TLS_KINDS[kind].certificate)
            common["tls"] = TLSConfig(certificate=cert, private_key=key, ports=ports)
        config = SocketConfig(local_ports=ports, handler="echo", **common)
        return SockService([config], factory=data_factory(kind), **service)

    from twisted_sock import BindError

    candidates = [[0]] if nports == 1 else [
        list(range(base, base + nports)) for base in port_blocks(nports, random.Random())
    ]
    for ports in candidates:
        service = build(ports)
        t0 = time.perf_counter()
        try:
            service.startService()
        except BindError:
            continue
        took = time.perf_counter() - t0
        listeners = service.statistics().sockets[0].listeners
        v4 = sorted(li.port for li in listeners if li.address == "127.0.0.1")
        info = {"ports": v4, "listeners": len(listeners), "start_seconds": took,
                "log_connections": log_connections}
        if kind.startswith("udp-"):
            info["prefilter"] = [li.prefilter for li in listeners if li.address == "127.0.0.1"][0]
        return info
    raise SystemExit("no free block of ports")


def start_bare(kind: str, nports: int, reactor: Any, pki: str | None = None) -> dict[str, Any]:
    from twisted.internet import error
    from twisted.web.server import Site

    from bench.handlers import Tiny, UDPEcho, UDPEchoFrom, data_factory

    if kind in SOCK_ONLY:
        raise SystemExit(f"bare Twisted has no {kind} server (a twisted-sock setting); its workload "
                         "compares against another bare Twisted server")
    if kind.startswith("udp-"):
        if nports != 1:
            raise SystemExit("the bare UDP servers open one port")
        protocol = UDPEcho() if kind == "udp-echo" else UDPEchoFrom(UDP_ALLOWED)
        t0 = time.perf_counter()
        port = reactor.listenUDP(0, protocol, interface="127.0.0.1", maxPacketSize=65535)
        took = time.perf_counter() - t0
        return {"ports": [port.getHost().port], "listeners": 1, "start_seconds": took}
    factory: Any = Site(Tiny()) if kind == "http" else data_factory(kind)
    if kind in TLS_KINDS:
        factory = tls_factory(factory, pki_files(pki, TLS_KINDS[kind].certificate))
    if nports == 1:
        t0 = time.perf_counter()
        port = reactor.listenTCP(0, factory, backlog=BACKLOG, interface="127.0.0.1")
        took = time.perf_counter() - t0
        return {"ports": [port.getHost().port], "listeners": 1, "start_seconds": took}
    # Mirror twisted-sock's interfaces="lo": every port on 127.0.0.1 and ::1.
    for base in port_blocks(nports, random.Random()):
        opened = []
        t0 = time.perf_counter()
        try:
            for p in range(base, base + nports):
                for address in ("127.0.0.1", "::1"):
                    opened.append(reactor.listenTCP(p, factory, backlog=BACKLOG, interface=address))
        except error.CannotListenError:
            for port in opened:
                port.stopListening()
            continue
        took = time.perf_counter() - t0
        return {"ports": list(range(base, base + nports)), "listeners": len(opened),
                "start_seconds": took}
    raise SystemExit("no free block of ports")


def tls_factory(factory: Any, files: tuple[str, str]) -> Any:
    """
    Bare Twisted's TLS server: C{TLSMemoryBIOFactory} around C{factory},
    with C{CertificateOptions} from the same certificate and key as the
    twisted-sock server (C{files}: their paths) and the same minimum version (TLS 1.2). Twisted 26
    fails every handshake with a client offering ALPN unless
    C{acceptableProtocols} is set (the generator offers none; set anyway).
    Session tickets and the session cache are on, as
    twisted-sock has them by default (Twisted's default is off), so that
    both servers do the same work (issuing tickets costs a full handshake
    about 25 us of server CPU).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from twisted.internet.ssl import CertificateOptions, TLSVersion
    from twisted.protocols.tls import TLSMemoryBIOFactory

    cert_path, key_path = files
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    options = CertificateOptions(privateKey=key, certificate=cert,  # type: ignore[arg-type]
                                 raiseMinimumTo=TLSVersion.TLSv1_2, acceptableProtocols=[b"bench"],
                                 enableSessions=True, enableSessionTickets=True)
    return TLSMemoryBIOFactory(options, False, factory)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.servers", description=__doc__.split("\n\n")[0])
    parser.add_argument("impl", choices=IMPLS)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--ports", type=int, default=1, help="data ports to open (default 1, port 0)")
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--pki", default=os.environ.get("BENCH_PKI"),
                        help="tls kinds: directory as write_pki() makes it (default $BENCH_PKI)")
    parser.add_argument("--log", choices=("stderr", "none"), default="stderr",
                        help="stderr: log as twistd does (text lines; twisted-sock: as twistd sock "
                        "does, through its own observer); none: discard log events")
    args = parser.parse_args(argv)
    t_main = time.perf_counter()
    nofile = raise_nofile()

    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    if args.log == "stderr" and args.impl == "twisted-sock":
        # As `twistd sock` logs: the service's own observer (twisted_sock.logs).
        from twisted_sock.logs.observer import BatchingLogObserver

        observer = BatchingLogObserver(sys.stderr, reactor=reactor)
        # .observe: the plain function registered since 0.2.0 (--commit of an older one: the instance)
        observers = [getattr(observer, "observe", observer)]
    elif args.log == "stderr":
        observers = [textFileLogObserver(sys.stderr)]
    else:
        observers = [lambda event: None]
    globalLogBeginner.beginLoggingTo(observers, redirectStandardIO=False)
    start = start_twisted_sock if args.impl == "twisted-sock" else start_bare
    info = start(args.kind, args.ports, reactor, args.pki)
    ports = info.pop("ports")
    info.update(
        impl=args.impl, kind=args.kind, pid=os.getpid(), port=ports[0],
        port_count=len(ports), contiguous=ports == list(range(ports[0], ports[0] + len(ports))),
        main_seconds=time.perf_counter() - t_main, nofile=nofile,
    )
    if args.impl == "twisted-sock":
        info["twisted_sock_file"] = sys.modules["twisted_sock"].__file__
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    _watch_parent(reactor)
    reactor.callLater(args.max_seconds, reactor.stop)
    reactor.run()


if __name__ == "__main__":
    main()
