"""1000 connections from a refused peer, as fast as possible."""

import collections
import errno
import socket

outcome = collections.Counter()
for _ in range(1000):
    s = socket.socket()
    s.connect(("127.0.0.1", 18001))
    try:
        s.sendall(b"x")
        outcome["data" if s.recv(10) else "EOF"] += 1
    except OSError as e:
        outcome[errno.errorcode[e.errno]] += 1
    s.close()
print(dict(outcome))
