"""
Python's ssl module against docs/examples/tls.toml: implicit TLS with ALPN,
STARTTLS (command and auto), mutual TLS, and a refused peer.

Run it from docs/examples while the server runs:
    python tls_client.py
"""

import socket
import ssl

CA = "pki/ca.pem"


def context(alpn=None, client_cert=False):
    ctx = ssl.create_default_context(cafile=CA)      # verifies the server
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if client_cert:
        ctx.load_cert_chain("pki/client.pem", "pki/client.key")
    return ctx


def read_some(s, want=1):
    data = b""
    while data.count(b"\n") < want:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def implicit_tls(alpn):
    raw = socket.create_connection(("127.0.0.1", 18443), timeout=5)
    with context(alpn).wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"hello over TLS\n")
        print(f"18443 offered {alpn}: {s.version()}, ALPN {s.selected_alpn_protocol()!r},"
              f" echo {read_some(s)!r}")


def starttls_command():
    raw = socket.create_connection(("127.0.0.1", 18445), timeout=5)
    raw.sendall(b"STARTTLS\r\n")
    print(f"18445 STARTTLS -> {raw.recv(7)!r}")
    with context().wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"now encrypted\n")
        print(f"18445 after the handshake: echo {read_some(s)!r}")


def plain_on_starttls_port():
    with socket.create_connection(("127.0.0.1", 18445), timeout=5) as s:
        s.sendall(b"just plain\r\n")
        print(f"18445 plain first line: echo {read_some(s)!r}")


def auto(tls):
    raw = socket.create_connection(("127.0.0.1", 18447), timeout=5)
    if tls:
        with context().wrap_socket(raw, server_hostname="localhost") as s:
            print(f"18447 TLS client:    {read_some(s)!r}")
    else:
        with raw:   # sends nothing: plain once sniff_timeout has passed
            print(f"18447 silent client: {read_some(raw)!r}")


def mutual(client_cert):
    raw = socket.create_connection(("127.0.0.1", 18446), timeout=5)
    try:
        with context(client_cert=client_cert).wrap_socket(raw, server_hostname="localhost") as s:
            greeting = read_some(s, 2)   # TLS 1.3: a refusal shows on the first read
            print(f"18446 with certificate={client_cert}:")
            print("  " + greeting.decode().replace("\n", "\n  ").rstrip())
    except (ssl.SSLError, OSError) as e:
        print(f"18446 with certificate={client_cert}: {type(e).__name__}: {e}")


def refused_source():
    raw = socket.socket()
    raw.settimeout(5)
    raw.bind(("127.0.0.2", 0))          # not in target_ip
    try:
        raw.connect(("127.0.0.1", 18443))
        with context().wrap_socket(raw, server_hostname="localhost") as s:
            print("18443 from 127.0.0.2: connected?!", s.version())
    except OSError as e:
        print(f"18443 from 127.0.0.2: {type(e).__name__}: {e}")


implicit_tls(["echo"])
implicit_tls(["echo", "h2"])
implicit_tls(None)
starttls_command()
plain_on_starttls_port()
auto(tls=True)
auto(tls=False)
mutual(client_cert=True)
mutual(client_cert=False)
refused_source()
