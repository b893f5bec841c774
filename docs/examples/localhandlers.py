"""
A handler for the local (UNIX) socket examples.

Put this module on the Python path (PYTHONPATH=docs/examples) and name it
as handler = "localhandlers:WhoAmI" in the configuration.
"""

from twisted.internet.protocol import Protocol

from twisted_sock import connection_info


class WhoAmI(Protocol):
    """Tells the peer who the kernel says it is, then echoes."""

    def connectionMade(self):
        info = connection_info(self)
        pid, uid, gid = info.peer_credentials       # from SO_PEERCRED
        self.transport.write(f"socket {info.socket!r}: you are pid {pid}, "
                             f"uid {uid}, gid {gid}\n".encode())

    def dataReceived(self, data):
        self.transport.write(data)
