"""
Python's socket module against docs/examples/udp.toml: the filtered
"sensors" socket from several source addresses, then multicast, broadcast
and a maximum-size datagram on the "echo" socket.

Run it while the server runs:  python docs/examples/udp_client.py
"""

import socket


def ask(source, target, payload, setup=None):
    """Send one datagram from `source` to `target`; (answer, sender) or None."""
    family = socket.AF_INET6 if ":" in source else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        if setup:
            setup(s)
        s.bind((source, 0))
        s.sendto(payload, target)
        try:
            return s.recvfrom(65535)
        except TimeoutError:
            return None


def show(answer):
    if answer is None:
        return "no answer (dropped)"
    data, sender = answer
    text = repr(data) if len(data) < 40 else f"{len(data)} bytes"
    return f"{text} from {sender[0]}:{sender[1]}"


def multicast_on_lo(s):
    # Send the group datagram out of lo, with TTL 0: it never leaves the machine.
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)


def broadcast(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)


print("sensors (target_ip 127.0.0.2 and ::1):")
for source, target in (("127.0.0.2", ("127.0.0.1", 18610)),
                       ("::1", ("::1", 18610)),
                       ("127.0.0.1", ("127.0.0.1", 18610)),
                       ("127.0.0.3", ("127.0.0.1", 18610))):
    print(f"  from {source:>9}: {show(ask(source, target, b'temperature 21.5'))}")

print("echo:")
print("  to 239.255.71.1:18601:   ",
      show(ask("127.0.0.1", ("239.255.71.1", 18601), b"to the group", multicast_on_lo)))
print("  to 127.255.255.255:18602:",
      show(ask("127.0.0.1", ("127.255.255.255", 18602), b"to everyone", broadcast)))
print("  to 127.0.0.1:18601:      ", show(ask("127.0.0.1", ("127.0.0.1", 18601), b"x" * 65507)))
print("  to [::1]:18601:          ", show(ask("::1", ("::1", 18601), b"x" * 65527)))
