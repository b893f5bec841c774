"""
Clients for docs/examples/local.toml: a stream connection, a datagram
exchange (the client binds its own address to get the reply) and the
abstract socket. Run while the server is up.
"""

import os
import socket

DEMO = "/tmp/sockdemo"

# A stream socket: connect to the file.
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
    s.settimeout(5)
    s.connect(f"{DEMO}/app.sock")
    print("app:   ", s.recv(200).decode().strip(), f"(this is pid {os.getpid()})")
    s.sendall(b"ping")
    print("app:   ", s.recv(200))

# A datagram socket: without bind() the client has no address, and the
# server's reply would have nowhere to go.
client_path = f"{DEMO}/client-{os.getpid()}.sock"
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as d:
    d.settimeout(5)
    d.bind(client_path)
    try:
        d.sendto(b"event 1", f"{DEMO}/events.sock")
        data, server = d.recvfrom(65536)
        print("events:", data, "from", server)
    finally:
        os.unlink(client_path)

# The abstract namespace: a leading NUL byte instead of "@".
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
    s.settimeout(5)
    s.connect("\0twisted-sock-demo")
    s.sendall(b"hello, abstract")
    print("hidden:", s.recv(200))
