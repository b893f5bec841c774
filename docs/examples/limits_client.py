"""Fill docs/examples/limits.toml's socket from three loopback addresses."""

import errno
import socket
import time


def connect(source):
    s = socket.socket()
    s.bind((source, 0))
    s.connect(("127.0.0.1", 18002))
    try:
        s.sendall(b"ping\n")
        return s, s.recv(100)
    except OSError as e:
        s.close()
        return None, errno.errorcode[e.errno]


a, answer = connect("127.0.0.1")
print("1st from 127.0.0.1:", answer)
b, answer = connect("127.0.0.1")
print("2nd from 127.0.0.1:", answer)
c, answer = connect("127.0.0.1")
print("3rd from 127.0.0.1:", answer)
d, answer = connect("127.0.0.2")
print("1st from 127.0.0.2:", answer)
e, answer = connect("127.0.0.3")
print("1st from 127.0.0.3:", answer)
start = time.monotonic()
print("then, after silence:", a.recv(100), f"after {time.monotonic() - start:.1f} s")
