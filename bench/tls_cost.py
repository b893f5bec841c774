"""
What OpenSSL itself costs the server per TLS handshake, without sockets,
Twisted or an event loop: ``python -m bench.tls_cost``.

A pyOpenSSL client and a server on twisted-sock's own server context
(L{twisted_sock.net.tls_options.server_options}: the intermediate profile,
session tickets on) hand their bytes over through memory BIOs in one
process; only the server's calls are timed, in CPU time of the thread
(C{time.thread_time}): creating its C{SSL.Connection}, feeding it the
client's bytes, C{do_handshake}, reading what it sends, freeing it. That is
the part of a handshake no Python server can make cheaper, so the ratio of
a full to a resumed handshake here is the best any server on this OpenSSL
can reach (the tls rows of ``python -m bench`` add the TCP connection,
Twisted and twisted-sock to both).

Rows: a full TLS 1.3 and TLS 1.2 handshake with the bench's ECDSA P-256
certificate and with an RSA 2048 one; a TLS 1.3 resumption as every common
client asks for it (``psk_dhe_ke``: a new X25519 exchange) and, for
comparison only, without the key exchange (``psk_ke``, which twisted-sock
does not enable: it gives up forward secrecy for resumed sessions, and
browsers and Python's C{ssl} never offer it); a TLS 1.2 resumption from a
ticket.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from OpenSSL import SSL

#: OpenSSL's C{SSL_OP_ALLOW_NO_DHE_KEX} and (OpenSSL >= 3.3)
#: C{SSL_OP_PREFER_NO_DHE_KEX} (pyOpenSSL names neither): the psk_ke row.
ALLOW_NO_DHE_KEX = 1 << 10
PREFER_NO_DHE_KEX = 1 << 35


def _read(connection: SSL.Connection) -> bytes:
    try:
        return connection.bio_read(65536)
    except SSL.WantReadError:
        return b""


def _handshake(connection: SSL.Connection) -> bool:
    try:
        connection.do_handshake()
        return True
    except SSL.WantReadError:
        return False


def server_seconds(server: SSL.Context, client: SSL.Context,
                   session: SSL.Session | None) -> tuple[float, SSL.Session | None, int]:
    """
    One handshake in memory, a pyOpenSSL client offering C{session}: the
    server's CPU seconds, the client's session afterwards and the length
    of the server's first flight (shorter than its certificate: resumed).
    """
    c = SSL.Connection(client, None)
    c.set_connect_state()
    if session is not None:
        c.set_session(session)
    t0 = time.thread_time()
    s = SSL.Connection(server, None)
    s.set_accept_state()
    spent = time.thread_time() - t0
    first = 0
    for _ in range(10):
        _handshake(c)
        data = _read(c)
        t0 = time.thread_time()
        if data:
            s.bio_write(data)
        done = _handshake(s)
        out = _read(s)
        spent += time.thread_time() - t0
        first = first or len(out)
        if out:
            c.bio_write(out)
        if done and not out:
            break
    try:
        c.recv(1)  # a TLS 1.3 client takes its tickets here
    except SSL.WantReadError:
        pass
    # A clean end: OpenSSL keeps a session for resumption only after one.
    c.set_shutdown(SSL.SENT_SHUTDOWN | SSL.RECEIVED_SHUTDOWN)
    t0 = time.thread_time()
    s.set_shutdown(SSL.SENT_SHUTDOWN | SSL.RECEIVED_SHUTDOWN)
    del s
    spent += time.thread_time() - t0
    return spent, c.get_session(), first


def measure(server: SSL.Context, client: SSL.Context, resume: bool, count: int,
            certificate_size: int) -> tuple[float, int]:
    """
    The mean server CPU per handshake over C{count} handshakes (after 20 to
    warm up), in microseconds, and how many of them were resumed (the
    server sent no certificate).
    """
    session = None
    total = 0.0
    resumed = 0
    for i in range(count + 20):
        spent, fresh, first = server_seconds(server, client, session if resume else None)
        session = fresh
        if i >= 20:
            total += spent
            resumed += first < certificate_size
    return 1e6 * total / count, resumed


def contexts(directory: str) -> tuple[dict[str, SSL.Context], int]:
    """
    twisted-sock's server contexts (ECDSA P-256, RSA 2048, and ECDSA
    preferring psk_ke) and the DER length of the ECDSA certificate.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from twisted_sock import TLSConfig
    from twisted_sock.net.tls_options import server_options
    from twisted_sock.testing import issue_server_certificate, make_pki

    pki = make_pki(directory)
    rsa = issue_server_certificate(pki, directory, "rsa", ("localhost",), use_rsa=True)

    def ours(cert: str, key: str) -> SSL.Context:
        return server_options(TLSConfig(certificate=cert, private_key=key, ports=[0]), "data").getContext()

    no_dhe = ours(pki.server_certificate, pki.server_key)
    no_dhe.set_options(ALLOW_NO_DHE_KEX | PREFER_NO_DHE_KEX)
    with open(pki.server_certificate, "rb") as f:
        der = x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER)
    return {"ecdsa": ours(pki.server_certificate, pki.server_key),
            "rsa": ours(*rsa), "ecdsa-psk_ke": no_dhe}, len(der)


def client(tls12: bool = False, options: int = 0) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)  # no verification: the server's cost is measured
    ctx.set_session_cache_mode(SSL.SESS_CACHE_CLIENT)
    if tls12:
        ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
    if options:
        ctx.set_options(options)
    return ctx


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tls_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="handshakes per row (default 1000)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/tls-cost.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        ctx, certificate_size = contexts(d)
        rows = [
            ("full TLS 1.3, ECDSA P-256", ctx["ecdsa"], client(), False),
            ("full TLS 1.2, ECDSA P-256", ctx["ecdsa"], client(True), False),
            ("full TLS 1.3, RSA 2048", ctx["rsa"], client(), False),
            ("resumed TLS 1.3 (psk_dhe_ke)", ctx["ecdsa"], client(), True),
            ("resumed TLS 1.3 (psk_ke, comparison)", ctx["ecdsa-psk_ke"],
             client(options=ALLOW_NO_DHE_KEX), True),
            ("resumed TLS 1.2 (ticket)", ctx["ecdsa"], client(True), True),
        ]
        measured = {label: measure(s, c, resume, args.count, certificate_size)
                    for label, s, c, resume in rows}
    results = {label: us for label, (us, _) in measured.items()}
    full = results["full TLS 1.3, ECDSA P-256"]
    print(f"server CPU per handshake in OpenSSL ({SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()}), "
          f"{args.count} handshakes a row, in memory:")
    for label, (us, resumed) in measured.items():
        print(f"  {label:38s} {us:7.1f} µs   full TLS 1.3 ECDSA / this: {full / us:4.2f}×   "
              f"resumed {resumed}/{args.count}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"count": args.count, "us_per_handshake": results,
                                    "resumed": {k: r for k, (_, r) in measured.items()}}, indent=1) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
