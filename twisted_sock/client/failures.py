"""
Why an opening failed: every exception met while connecting, and every
option refused before it, becomes one
L{ConnectionFailed<twisted_sock.errors.ConnectionFailed>} carrying a
L{ShutdownReason} and a one-line message naming the target.
"""

from __future__ import annotations

import errno

from twisted.internet import error

from twisted_sock.errors import ConfigError, ConnectionFailed
from twisted_sock.reasons import ShutdownReason

#: Option keys whose errors are about where to connect (C{ADDRESS_INVALID});
#: every other bad option is C{OPEN_FAILED}.
_ADDRESS_KEYS = ("address", "local_address", "local_port")


def _bind_reason(code: int | None) -> ShutdownReason:
    return ShutdownReason.ADDR_IN_USE if code == errno.EADDRINUSE else ShutdownReason.BIND_FAILED


def reason_for(failure: BaseException) -> ShutdownReason:
    """
    The L{ShutdownReason} for an exception met while connecting.
    """
    if isinstance(failure, ConnectionFailed):
        return failure.reason
    if isinstance(failure, error.ConnectionRefusedError):
        return ShutdownReason.CONNECT_REJECTED
    if isinstance(failure, (error.DNSLookupError, ValueError)):
        return ShutdownReason.ADDRESS_INVALID
    if isinstance(failure, error.ConnectBindError):
        return _bind_reason(failure.osError)
    if isinstance(failure, error.CannotListenError):
        return _bind_reason(getattr(failure.socketError, "errno", None))
    if isinstance(failure, error.ConnectError):
        if failure.osError in (errno.ECONNREFUSED, errno.ECONNRESET):
            return ShutdownReason.CONNECT_REJECTED
        return ShutdownReason.CONNECT_FAILED
    if isinstance(failure, ConnectionRefusedError):
        return ShutdownReason.CONNECT_REJECTED
    return ShutdownReason.CONNECT_FAILED


def _describe(failure: BaseException, target: str) -> str:
    if isinstance(failure, error.ConnectionRefusedError):
        return f"connection refused by {target}"
    if isinstance(failure, (error.TimeoutError, error.TCPTimedOutError)):
        return f"timed out connecting to {target}"
    if isinstance(failure, error.DNSLookupError):
        return f"cannot resolve the host of {target}"
    if isinstance(failure, error.ConnectBindError):
        return f"cannot bind the local end: {failure.args[-1] if failure.args else failure}"
    if isinstance(failure, error.CannotListenError):
        why = getattr(failure.socketError, "strerror", None) or failure.socketError
        return f"cannot bind the local end {failure.interface or '*'}:{failure.port}: {why}"
    if isinstance(failure, error.ConnectError):
        why = failure.args[-1] if failure.args else ""
        if failure.osError == errno.ENOENT:
            why = "no such socket file"
        return f"cannot connect to {target}: {why or type(failure).__name__}"
    return f"cannot connect to {target}: {failure}"


def as_connection_failed(failure: BaseException, target: str) -> ConnectionFailed:
    """
    C{failure} as a L{ConnectionFailed} with a one-line message naming
    C{target}.
    """
    if isinstance(failure, ConnectionFailed):
        return failure
    return ConnectionFailed(_describe(failure, target), reason_for(failure))


def refused_option(e: ConfigError) -> ConnectionFailed:
    """
    A bad option given to C{open_socket} as a L{ConnectionFailed}:
    C{ADDRESS_INVALID} for where to connect (the address, the local
    address or port), C{OPEN_FAILED} for anything else.
    """
    reason = ShutdownReason.ADDRESS_INVALID if e.key in _ADDRESS_KEYS else ShutdownReason.OPEN_FAILED
    message = f"{e.value!r}: {e.problem}" if e.key == "address" else str(e)
    return ConnectionFailed(message, reason)
