"""
Accounting for a failed TLS handshake on a connection twisted-sock
accepted (its reason, the C{tls_failures} figure, the rate-limited log
line): shared by the handshake checks (L{twisted_sock.net.tls_session}),
L{twisted_sock.net.tls.start_tls} and the server-name refusal of
C{sni_strict} (L{twisted_sock.net.tls_options}).
"""

from __future__ import annotations

from typing import Any

from twisted_sock.policy.addresses import hostport
from twisted_sock.reasons import ShutdownReason


def record_handshake_failure(raw: Any, why: str) -> None:
    """
    A handshake on a connection twisted-sock accepted failed: reason
    C{TLS_HANDSHAKE_FAILED}, counted in C{tls_failures}, logged (rate-limited).
    """
    if raw is None or raw.sock.reason is not None:
        return
    raw.sock.reason = ShutdownReason.TLS_HANDSHAKE_FAILED
    state = raw.sock_state
    state.tls_failures += 1
    host, port = raw.client[0], raw.client[1]
    state.tls_log.event(
        lambda: f"socket {state.name!r}: TLS handshake failed with "
        f"{hostport(host, port)} on port {raw.server.sock_port}: {why}",
        {"peer": host, "peer_port": port, "local_port": raw.server.sock_port,
         "reason": "TLS_HANDSHAKE_FAILED", "error": why},
    )
