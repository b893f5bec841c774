"""
The running service: L{SockService} and its sockets (L{LiveSocket}), and
the names that say what may change at run time.

Inside: L{keys<twisted_sock.service.keys>} (what may change),
L{planner<twisted_sock.service.planner>} (a change planned, pure),
L{apply<twisted_sock.service.apply>} (a plan carried out),
L{assembly<twisted_sock.service.assembly>} (one socket's factories and TLS
options), L{running<twisted_sock.service.running>},
L{drain<twisted_sock.service.drain>}, L{logs<twisted_sock.service.logs>}.
"""

from twisted_sock.service.drain import CLOSE_GRACE, DRAIN_TIMEOUT
from twisted_sock.service.keys import DECISION_KEYS, LISTENER_KEYS, RUNTIME_KEYS, TLS_LISTENER_KEYS
from twisted_sock.service.live import LiveSocket
from twisted_sock.service.sockservice import SockService

__all__ = [
    "CLOSE_GRACE",
    "DECISION_KEYS",
    "DRAIN_TIMEOUT",
    "LISTENER_KEYS",
    "RUNTIME_KEYS",
    "TLS_LISTENER_KEYS",
    "LiveSocket",
    "SockService",
]
