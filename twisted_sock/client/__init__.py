"""
The client half: L{open_socket} opens a TCP, TLS, STARTTLS, UDP or UNIX
connection from an address string (the ISocket C{Connect(address,
serverName)}, LiveCode's C{open socket} / C{open secure socket}).

Built on the server's pieces: the settings are validated by
L{twisted_sock.config.client} (which loads files with the server's TLS
loaders), TLS starts with L{twisted_sock.net.tls.start_tls} on the
connected transport for implicit TLS and STARTTLS alike, and every failure
is a L{ConnectionFailed<twisted_sock.errors.ConnectionFailed>} carrying a
L{ShutdownReason<twisted_sock.reasons.ShutdownReason>}.

The user's protocol is built only once the connection is usable (connected,
and after STARTTLS and the handshake when asked for), so its
C{connectionMade} sees a verified TLS session; bytes written to the
returned L{Connecting} before then are sent first.

The modules, in the order a connection goes through them:

  - L{open<twisted_sock.client.open>}: L{open_socket} and L{connect}, the
    entry points.
  - L{stream<twisted_sock.client.stream>}: a TCP or UNIX attempt (connect,
    STARTTLS, TLS handshake).
  - L{datagram<twisted_sock.client.datagram>}: a UDP attempt (resolve,
    bind, connect).
  - L{attempt<twisted_sock.client.attempt>}: what both attempts share
    (the timer, ending once).
  - L{tls<twisted_sock.client.tls>}: the client TLS options.
  - L{failures<twisted_sock.client.failures>}: every failure as one
    C{ConnectionFailed} with a reason.
  - L{result<twisted_sock.client.result>}: L{Connecting} and
    L{ClientInfo}, what the caller gets.
  - L{netcat<twisted_sock.client.netcat>}: C{twisted-sock connect}, the
    command-line face.
"""

from twisted_sock.client.failures import as_connection_failed, reason_for
from twisted_sock.client.open import connect, open_socket
from twisted_sock.client.result import ClientInfo, Connecting
from twisted_sock.client.tls import client_tls_options

__all__ = [
    "ClientInfo",
    "Connecting",
    "as_connection_failed",
    "client_tls_options",
    "connect",
    "open_socket",
    "reason_for",
]
