"""
What every connection attempt shares, stream or datagram: the
L{Connecting} result and its L{Outbox}, the overall timer, and ending once
(connected, failed, timed out or cancelled).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from twisted_sock.client.failures import as_connection_failed
from twisted_sock.client.result import ClientInfo, Connecting, Outbox
from twisted_sock.config.client import ConnectOptions
from twisted_sock.timers import cancel_call


class Phase(Enum):
    """
    Where an attempt is: what a timeout then means.
    """

    STARTING = "starting"
    RESOLVING = "resolving"
    CONNECTING = "connecting"
    STARTTLS = "starttls"
    TLS = "tls"
    OPEN = "open"


class Attempt:
    """
    One attempt at opening a connection. Subclasses L{start} it, say what
    a timeout means (L{timed_out}) and what to let go of when it ends
    without a connection (L{cleanup}); they end it with L{fail} or
    L{opened}.

    @ivar connecting: the L{Connecting} handed to the caller.
    @ivar target: the target as an address string, for messages.
    @ivar done: whether the attempt has ended.
    """

    phase = Phase.STARTING

    def __init__(self, options: ConnectOptions, reactor: Any) -> None:
        self.options = options
        self.reactor = reactor
        self.outbox = Outbox()
        self.connecting = Connecting(lambda _: self.cancelled(), self.outbox)
        self.target = str(options.target)
        self.done = False
        self.timer: IDelayedCall | None = reactor.callLater(options.timeout, self.timed_out)

    @property
    def timeout_text(self) -> str:
        """
        The timeout, for messages: C{"10 s"}.
        """
        return f"{self.options.timeout:g} s"

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def timed_out(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def cleanup(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop_timer(self) -> None:
        cancel_call(self.timer)
        self.timer = None

    def _end(self) -> bool:
        """
        End the attempt without a connection; C{False} if it had ended.
        """
        if self.done:
            return False
        self.done = True
        self.stop_timer()
        self.outbox.close()
        self.cleanup()
        return True

    def cancelled(self) -> None:
        """
        The user cancelled the L{Connecting}: stop everything; the
        Deferred itself fails with C{CancelledError}.
        """
        self._end()

    def fail(self, failure: BaseException) -> None:
        """
        End the attempt: the L{Connecting} fails with C{failure} as a
        L{ConnectionFailed<twisted_sock.errors.ConnectionFailed>}.
        """
        if self._end():
            self.connecting.errback(Failure(as_connection_failed(failure, self.target)))

    def failed(self, failure: Failure) -> None:
        """
        L{fail} with a Deferred's failure (an errback).
        """
        self.fail(failure.value)

    def opened(self, transport: Any, info: ClientInfo) -> None:
        """
        End the attempt connected: stop the timer, set the L{Connecting}'s
        C{info} and send what was written to it so far. The caller then
        fires the L{Connecting} with the protocol.
        """
        self.done = True
        self.phase = Phase.OPEN
        self.stop_timer()
        self.connecting.info = info
        self.outbox.open(transport)
