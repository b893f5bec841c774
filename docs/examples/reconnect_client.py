"""
The "device" socket of docs/examples/operations.toml (max_connections = 1,
reconnect = "same-ip"): a device reconnects while its old connection is
still open; another address finds the socket full.
"""

import socket


def connect(source):
    s = socket.socket()
    s.settimeout(5)
    s.bind((source, 0))
    s.connect(("127.0.0.1", 18702))
    return s


def talk(s, text):
    try:
        s.sendall(text)
        return s.recv(100) or "end of file"
    except OSError as e:
        return type(e).__name__


old = connect("127.0.0.2")
print("device, 1st connection:", talk(old, b"hello"))
other = connect("127.0.0.3")
print("127.0.0.3 (socket full):", talk(other, b"me too"))
new = connect("127.0.0.2")          # the device again, from a new port
print("device, 2nd connection:", talk(new, b"hello again"))
print("device, 1st connection:", talk(old, b"still there?"))
for s in (old, other, new):
    s.close()
