"""
The client's entry points: L{open_socket} validates its keyword options
into L{ConnectOptions} and L{connect} starts the stream or datagram attempt
they describe.
"""

from __future__ import annotations

from typing import Any

from twisted.python.failure import Failure

from twisted_sock.client.attempt import Attempt
from twisted_sock.client.datagram import DatagramAttempt, datagram_protocol
from twisted_sock.client.failures import refused_option
from twisted_sock.client.result import Connecting, Outbox
from twisted_sock.client.stream import StreamAttempt, stream_factory
from twisted_sock.config.client import DEFAULT_TIMEOUT, ClientTLS, ConnectOptions
from twisted_sock.errors import ConfigError


def connect(options: ConnectOptions, protocol: Any, reactor: Any = None) -> Connecting:
    """
    Open the connection described by validated L{ConnectOptions} (see
    L{open_socket}).
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    attempt: Attempt
    if options.target.transport == "udp":
        attempt = DatagramAttempt(options, datagram_protocol(protocol, options.target), reactor)
    else:
        attempt = StreamAttempt(options, stream_factory(protocol), reactor)
    attempt.start()
    return attempt.connecting


def open_socket(
    address: str,
    protocol: Any,
    *,
    reactor: Any = None,
    tls: bool = False,
    starttls: bool = False,
    verify: bool = True,
    ca: str | None = None,
    certificate: str | None = None,
    private_key: str | None = None,
    server_name: str | None = None,
    verify_hostname: str | None = None,
    alpn: Any = (),
    alpn_required: bool = False,
    min_version: str = "TLSv1.2",
    local_address: str | None = None,
    local_port: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Connecting:
    """
    Open a client connection.

    @param address: C{host:port}, C{[v6]:port}, C{udp:host:port},
        C{unix:/path} or C{unix:@abstract}.
    @param protocol: a protocol factory (or one protocol instance); for UDP
        a C{DatagramProtocol}.
    @param reactor: the reactor (default: the global one).
    @param tls: start TLS at once (implicit TLS).
    @param starttls: send C{STARTTLS}, wait for C{READY}, then start TLS
        (implies C{tls}).
    @param verify: verify the server certificate (chain and name);
        C{False} is the explicit opt-out.
    @param ca: CA certificates (PEM) to verify against instead of the
        system trust store.
    @param certificate: client certificate (PEM), with C{private_key}.
    @param server_name: the name sent as SNI, and verified unless
        C{verify_hostname} is given; default: the host.
    @param verify_hostname: the name the certificate must be valid for,
        when it is not C{server_name}.
    @param alpn: ALPN protocols to offer, in preference order.
    @param alpn_required: fail with C{ALPN_SELECTION_FAILED} when the
        server selects none.
    @param min_version: C{"TLSv1.2"} or C{"TLSv1.3"}.
    @param local_address: local IP address to bind (LiveCode's local host).
    @param local_port: local port to bind (Tibbo C{sock.outport}).
    @param timeout: seconds for the whole opening: resolving, connecting,
        STARTTLS and the handshake.
    @return: a L{Connecting} (a Deferred) firing with the connected
        protocol, or failing with L{ConnectionFailed} whose C{reason} is
        the L{ShutdownReason} (C{ADDRESS_INVALID}, C{CONNECT_REJECTED},
        C{CONNECT_FAILED}, C{TLS_HANDSHAKE_FAILED}, ...).
    """
    try:
        client_tls = None
        if tls or starttls:
            client_tls = ClientTLS(starttls=starttls, verify=verify, ca=ca, certificate=certificate,
                                   private_key=private_key, server_name=server_name,
                                   verify_hostname=verify_hostname, alpn=alpn,
                                   alpn_required=alpn_required, min_version=min_version)
        options = ConnectOptions(address, local_address=local_address, local_port=local_port,
                                 timeout=timeout, tls=client_tls)
    except ConfigError as e:
        outbox = Outbox()
        failed = Connecting(outbox=outbox)
        failed.errback(Failure(refused_option(e)))
        outbox.close()
        return failed
    return connect(options, protocol, reactor)
