"""
A handler for the TLS examples: it says what twisted-sock knows about the
connection's TLS state, then echoes.

Put this module on the Python path (PYTHONPATH=docs/examples, or
PYTHONPATH=. from docs/examples) and name it as "tlshandlers:WhoAreYou".
"""

from twisted.internet.protocol import Protocol

from twisted_sock import connection_info


class WhoAreYou(Protocol):
    def connectionMade(self):
        info = connection_info(self)
        lines = [f"socket {info.socket!r}, port {info.local_port}: "
                 f"tls={info.tls} alpn={info.alpn} client={info.peer_subject}"]
        if info.peer_fingerprint:
            lines.append(f"client certificate SHA-256 {info.peer_fingerprint}")
        self.transport.write("".join(line + "\n" for line in lines).encode())

    def dataReceived(self, data):
        self.transport.write(data)
