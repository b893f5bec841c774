"""
ALPN from Python: TLSConfig with alpn_required and an accept_alpn hook.

Run it from docs/examples after making the test certificates:
    python -c "from twisted_sock.testing import make_pki; make_pki('pki')"
    python alpn_hook.py
"""

import socket
import ssl

from twisted.internet import defer, task, threads

from twisted_sock import SocketConfig, SockService, TLSConfig


def accept_alpn(protocol, peer):
    """
    Runs after every successful handshake with the negotiated protocol
    (None when none was negotiated) and the peer's address; False closes
    the connection with ALPN_SELECTION_FAILED.
    """
    print(f"  hook: {protocol!r} from {peer.host}")
    return not (protocol == "echo/debug" and peer.host != "127.0.0.1")


def client(port, alpn, source="127.0.0.1"):
    ctx = ssl.create_default_context(cafile="pki/ca.pem")
    ctx.set_alpn_protocols(alpn)
    raw = socket.socket()
    raw.bind((source, 0))
    raw.connect(("127.0.0.1", port))
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"ping")
        try:
            answer = s.recv(100) or b"(closed)"
        except ConnectionResetError:
            answer = b"(reset)"
        return f"{source} offered {alpn}: ALPN {s.selected_alpn_protocol()!r}, got {answer!r}"


@defer.inlineCallbacks
def main(reactor):
    tls = TLSConfig(certificate="pki/server.pem", private_key="pki/server.key",
                    ports=[0],                   # 0: the port-0 listener below is TLS
                    alpn=["echo/2", "echo/debug"],
                    alpn_required=True,          # no common protocol: ALPN_SELECTION_FAILED
                    accept_alpn=accept_alpn)
    config = SocketConfig(name="alpn", incoming="any-ip-any-port", local_ports=[0],
                          interfaces="lo", tls=tls)
    service = SockService([config], reactor=reactor)
    service.startService()
    live = service.sockets["alpn"]
    port = live.statistics().listeners[0].port
    for alpn, source in ((["echo/debug", "echo/2"], "127.0.0.1"),
                         (["echo/debug"], "127.0.0.1"),
                         (["echo/debug"], "127.0.0.2"),
                         (["h2"], "127.0.0.1")):
        print((yield threads.deferToThread(client, port, alpn, source)))
    yield task.deferLater(reactor, 0.2, lambda: None)
    print("closed:", {k: v for k, v in live.statistics().closed.items() if v})
    yield service.stopService()


if __name__ == "__main__":
    task.react(main)
