"""
Upgrading a connection to TLS from application code with start_tls() --
ISocket's UpgradeToTLSSocket -- after a command of the application's own
protocol (here a line "SECURE"), on both ends.

Run it from docs/examples after making the test certificates:
    python -c "from twisted_sock.testing import make_pki; make_pki('pki')"
    python upgrade.py
"""

from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory
from twisted.internet.ssl import Certificate, CertificateOptions, PrivateCertificate, optionsForClientTLS
from twisted.protocols.basic import LineReceiver

from twisted_sock import SocketConfig, SockService, connection_info, start_tls


def read(path):
    with open(path, "rb") as f:
        return f.read()


pem = PrivateCertificate.loadPEM(read("pki/server.pem") + read("pki/server.key"))
SERVER_OPTIONS = CertificateOptions(privateKey=pem.privateKey.original, certificate=pem.original,
                                    acceptableProtocols=[b"upgrade/1"])
CLIENT_OPTIONS = optionsForClientTLS("localhost", trustRoot=Certificate.loadPEM(read("pki/ca.pem")),
                                     acceptableProtocols=[b"upgrade/1"])


class Server(LineReceiver):
    """
    Answers every line with what it knows about the connection; the line
    SECURE switches the connection to TLS.
    """

    secure = False

    def lineReceived(self, line):
        if line == b"SECURE" and not self.secure:
            self.sendLine(b"GO AHEAD")              # still plaintext
            dropped = self.clearLineBuffer()        # plaintext sent after SECURE: never trust it
            if dropped:
                print(f"server: discarded {len(dropped)} plaintext bytes sent after SECURE")
            d = start_tls(self.transport, SERVER_OPTIONS, server_side=True)
            d.addCallbacks(self.upgraded, self.failed)
            return
        info = connection_info(self)
        self.sendLine(f"{line.decode()} (upgraded={self.secure}, tls={info.tls})".encode())

    def upgraded(self, alpn):
        print(f"server: handshake done, ALPN {alpn!r}")
        self.secure = True

    def failed(self, failure):
        print(f"server: {failure.value}")


class Client(LineReceiver):
    def connectionMade(self):
        self.answers = defer.DeferredQueue()

    def lineReceived(self, line):
        self.answers.put(line.decode())

    @defer.inlineCallbacks
    def ask(self, line):
        self.sendLine(line)
        answer = yield self.answers.get()
        print(f"client: {line.decode()!r:<12} -> {answer!r}")
        return answer


@defer.inlineCallbacks
def main(reactor):
    config = SocketConfig(name="upgrade", incoming="any-ip-any-port", local_ports=[0],
                          interfaces="lo")
    service = SockService([config], factory=Factory.forProtocol(Server), reactor=reactor)
    service.startService()
    port = service.sockets["upgrade"].statistics().listeners[0].port

    client = yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), Client())
    yield client.ask(b"hello")
    answer = yield client.ask(b"SECURE")
    if answer == "GO AHEAD":
        alpn = yield start_tls(client.transport, CLIENT_OPTIONS, server_side=False)
        print(f"client: handshake done, ALPN {alpn!r}, server verified as localhost")
    yield client.ask(b"hello again")
    client.transport.loseConnection()
    yield task.deferLater(reactor, 0.1, lambda: None)
    yield service.stopService()


if __name__ == "__main__":
    task.react(main)
