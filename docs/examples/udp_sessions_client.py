"""
Two peers of the udp_sessions.toml example: a line from one reaches the
other (chat across sessions); a third peer is dropped (max_connections =
2) unless it comes from a new port of an address that has a session
(reconnect = same-ip moves the session there).
"""

import socket

TARGET = ("127.0.0.1", 18620)


def peer() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    return s


alice, bob = peer(), peer()
alice.sendto(b"alice joins\n", TARGET)
bob.sendto(b"bob joins\n", TARGET)
print("alice hears:", alice.recv(100))          # b'bob joins\n'
alice.sendto(b"hello bob\n", TARGET)
print("bob hears:", bob.recv(100))              # b'hello bob\n'

# The socket is full: a new port of 127.0.0.1 replaces the oldest session
# of that address (alice's, which ends REPLACED) and takes its place.
carol = peer()
carol.sendto(b"carol joins\n", TARGET)
print("bob hears:", bob.recv(100))              # b'carol joins\n'
