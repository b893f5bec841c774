"""
Errors with one-line messages.

Every error a user can cause carries structured fields and renders as the one
clear line the command line prints (no traceback).
"""

from __future__ import annotations

from typing import Any


class SockError(Exception):
    """
    Base class of every twisted-sock error a user can cause.
    """


class ConfigError(SockError, ValueError):
    """
    An invalid configuration value.

    @ivar problem: what is wrong, in a few words.
    @ivar file: the configuration file, when there is one.
    @ivar socket: the socket's name, when the problem belongs to one socket.
    @ivar key: the configuration key (or command-line flag).
    @ivar value: the offending value.
    """

    _NO_VALUE: Any = object()

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        socket: str | None = None,
        key: str | None = None,
        value: Any = _NO_VALUE,
    ) -> None:
        self.problem = problem
        self.file = file
        self.socket = socket
        self.key = key
        self.value = value
        super().__init__(str(self))

    @property
    def has_value(self) -> bool:
        return self.value is not self._NO_VALUE

    def located(self, **where: Any) -> ConfigError:
        """
        Return a copy with the missing location fields filled in from
        C{where} (C{file}, C{socket}, C{key}); fields already set win.
        """
        fields = {
            "file": self.file,
            "socket": self.socket,
            "key": self.key,
        }
        for name, val in where.items():
            if fields.get(name) is None:
                fields[name] = val
        return ConfigError(self.problem, value=self.value, **fields)

    def __str__(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(self.file)
        if self.socket is not None:
            parts.append(f"socket {self.socket!r}")
        if self.key is not None:
            if self.has_value:
                parts.append(f"{self.key} = {_show(self.value)}")
            else:
                parts.append(self.key)
        elif self.has_value:
            parts.append(_show(self.value))
        parts.append(self.problem)
        return ": ".join(parts)


class BindError(SockError, OSError):
    """
    A listener could not be opened; nothing was left listening.

    Renders as C{BIND_FAILED <address>:<port>: <reason>}.
    """

    def __init__(self, address: str, port: int | None, reason: str, socket: str = "") -> None:
        self.address = address
        self.port = port
        self.reason = reason
        self.socket = socket
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" (socket {self.socket!r})" if self.socket else ""
        if self.port is None:  # a UNIX socket path
            return f"BIND_FAILED {self.address}: {self.reason}{where}"
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"BIND_FAILED {host}:{self.port}: {self.reason}{where}"


def _show(value: Any) -> str:
    return repr(value)


class ConnectionFailed(SockError):
    """
    A connection could not be made or upgraded.

    @ivar reason: the L{twisted_sock.ShutdownReason}.
    """

    def __init__(self, message: str, reason: Any) -> None:
        self.reason = reason
        super().__init__(f"{reason.name}: {message}")


class TLSHandshakeError(ConnectionFailed):
    """
    A TLS handshake failed (reason C{TLS_HANDSHAKE_FAILED}).
    """

    def __init__(self, message: str) -> None:
        from twisted_sock.reasons import ShutdownReason

        super().__init__(message, ShutdownReason.TLS_HANDSHAKE_FAILED)
