"""Connect to port 18001 from three loopback source addresses."""

import socket

for source in ["127.0.0.1", "127.0.0.2", "127.0.0.3"]:
    s = socket.socket()
    s.bind((source, 0))                 # choose the source address
    s.connect(("127.0.0.1", 18001))
    try:
        s.sendall(b"hi\n")
        print(source, "->", s.recv(100))
    except OSError as e:
        print(source, "->", type(e).__name__, e)
    s.close()
