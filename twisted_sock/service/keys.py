"""
Which settings of a running socket may change (a reload,
C{LiveSocket.reconfigure}), by what they touch.
"""

from __future__ import annotations

#: Keys that apply to the next connection without touching listeners.
DECISION_KEYS = frozenset(
    {"incoming", "target_ip", "target_port", "max_connections", "max_connections_per_ip",
     "idle_timeout", "http_header_timeout", "http_idle_timeout", "accept", "reconnect",
     "prefilter", "trusted_proxies"}
)
#: Keys that open and close listeners (all-or-nothing for the new ones).
LISTENER_KEYS = frozenset({"local_ports", "http_ports", "interfaces", "multicast_groups", "broadcast",
                           "listen"})
#: TLS settings (C{[socket.tls]}) may change except these, which decide
#: what the listeners are.
TLS_LISTENER_KEYS = ("ports", "starttls")
#: Everything L{LiveSocket.reconfigure} and a reload may change.
RUNTIME_KEYS = DECISION_KEYS | LISTENER_KEYS | {"tls"}
