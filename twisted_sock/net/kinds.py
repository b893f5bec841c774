"""
What a listener serves (L{ListenerMode}) and how (L{ListenerKind}), as
enums whose members are also the strings they used to be.

Both are string-valued: a member equals, hashes, prints, formats and
serialises (C{json.dumps}) exactly as its value, so status, JSON, metrics
and log output are byte-identical to plain strings on every supported
Python (3.11 changed C{Enum.__format__} for C{(str, Enum)} mixins, and
C{enum.StrEnum} does not exist on 3.10: L{TextEnum} pins the C{str}
behaviour). C{repr} is the string's too, so the C{repr} of the records
handed to handlers (C{ConnectionInfo}) is unchanged.
"""

from __future__ import annotations

from enum import Enum


class TextEnum(str, Enum):
    """
    A C{str}-valued enum that is its value for C{str()}, C{format()},
    f-strings, C{%s} and C{repr()}.
    """

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, format_spec: str) -> str:
        return str.__format__(self, format_spec)

    def __repr__(self) -> str:
        return str.__repr__(self)


class ListenerMode(TextEnum):
    """
    What a listener serves: raw data to the handler, or HTTP (twisted.web);
    L{ADMIN} is the admin socket's (matched against inherited sockets,
    never a socket's listener).
    """

    DATA = "data"
    HTTP = "http"
    ADMIN = "admin"


class ListenerKind(TextEnum):
    """
    How a listener receives: plain, implicit TLS, STARTTLS (plain data
    ports that can upgrade), a UNIX datagram socket, or a UDP multicast
    group / broadcast address (plain UDP listeners are L{PLAIN}).
    """

    PLAIN = "plain"
    TLS = "tls"
    STARTTLS = "starttls"
    DATAGRAM = "datagram"
    MULTICAST = "multicast"
    BROADCAST = "broadcast"

    @property
    def encrypted(self) -> bool:
        """
        Whether a listener of this kind serves TLS (from the start or after
        STARTTLS), so carries the certificate's fingerprint.
        """
        return self in (ListenerKind.TLS, ListenerKind.STARTTLS)

    @property
    def extra_address(self) -> bool:
        """
        Whether the listener's address is a UDP group or broadcast address
        sharing its port with the socket's own listeners.
        """
        return self in (ListenerKind.MULTICAST, ListenerKind.BROADCAST)
