"""
The incoming decision (SPEC section 1), as pure functions over normalised
addresses and ints.

The order is fixed: master switch, mode, target address, target port; then
the limits (L{check_limits}) and finally the user's C{accept} hook, which the
network layer runs because it may return a Deferred.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from twisted_sock.policy.addresses import IPAddress, IPNetwork


class IncomingMode(enum.Enum):
    """
    Which incoming connections a socket accepts (Tibbo C{sock.inconmode}).
    """

    NONE = "none"
    SPECIFIC_IP_PORT = "specific-ip-port"
    SPECIFIC_IP_ANY_PORT = "specific-ip-any-port"
    ANY_IP_ANY_PORT = "any-ip-any-port"

    @classmethod
    def coerce(cls, value: object) -> IncomingMode:
        """
        Accept an L{IncomingMode}, its value (C{"any-ip-any-port"}), its name
        in any case (C{"ANY_IP_ANY_PORT"}), or Tibbo's number 0-3.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value < len(_BY_NUMBER):
                return _BY_NUMBER[value]
        elif isinstance(value, str):
            text = value.strip().lower().replace("_", "-")
            if text.isdigit() and int(text) < len(_BY_NUMBER):
                return _BY_NUMBER[int(text)]
            for mode in cls:
                if mode.value == text:
                    return mode
        choices = ", ".join(m.value for m in cls)
        raise ValueError(f"unknown incoming mode {value!r} (choose one of {choices})")

    @property
    def needs_target_ip(self) -> bool:
        return self in (IncomingMode.SPECIFIC_IP_PORT, IncomingMode.SPECIFIC_IP_ANY_PORT)


_BY_NUMBER = (
    IncomingMode.NONE,
    IncomingMode.SPECIFIC_IP_PORT,
    IncomingMode.SPECIFIC_IP_ANY_PORT,
    IncomingMode.ANY_IP_ANY_PORT,
)
# The same members as module names for the decisions below, which run per
# connection and per datagram: reading a member off the Enum class costs a
# tenth of a microsecond on Python 3.10 and 3.11.
_NONE, _SPECIFIC_IP_PORT, _SPECIFIC_IP_ANY_PORT, _ANY_IP_ANY_PORT = _BY_NUMBER


@dataclass(frozen=True, slots=True)
class Decision:
    """
    The outcome of one incoming decision: accepted or not, and why (a short
    token used in logs and in the C{refused_by} counters).
    """

    accepted: bool
    reason: str


ACCEPT = Decision(True, "accepted")
REFUSE_MASTER = Decision(False, "master-switch-off")
REFUSE_MODE = Decision(False, "mode-none")
REFUSE_ADDRESS = Decision(False, "address-not-allowed")
REFUSE_PORT = Decision(False, "port-not-allowed")
REFUSE_PER_IP = Decision(False, "max-connections-per-ip")
REFUSE_FULL = Decision(False, "max-connections")
REFUSE_HOOK = Decision(False, "accept-hook")
REFUSE_CREDENTIALS = Decision(False, "peer-credentials")
REFUSE_UNTRUSTED_PROXY = Decision(False, "untrusted-proxy")
REFUSE_PROXY_HEADER = Decision(False, "bad-proxy-header")
#: A C{starttls = "auto"} connection began a TLS ClientHello that cannot be one.
REFUSE_CLIENT_HELLO = Decision(False, "bad-client-hello")
#: Not a decision of this module: the handler's factory refused (returned
#: None or raised); counted under this reason.
REFUSED_BY_HANDLER = "handler"

#: Every refusal reason, for counters that list zeros too.
REFUSAL_REASONS = tuple(
    d.reason
    for d in (
        REFUSE_MASTER,
        REFUSE_MODE,
        REFUSE_ADDRESS,
        REFUSE_PORT,
        REFUSE_PER_IP,
        REFUSE_FULL,
        REFUSE_HOOK,
    )
) + (REFUSED_BY_HANDLER,)
#: Reasons that only PROXY protocol sockets give.
PROXY_REFUSAL_REASONS = (REFUSE_UNTRUSTED_PROXY.reason, REFUSE_PROXY_HEADER.reason)

#: The refusal reasons of local (UNIX) sockets.
UNIX_REFUSAL_REASONS = (REFUSE_MASTER.reason, REFUSE_MODE.reason, REFUSE_CREDENTIALS.reason,
                        REFUSE_FULL.reason, REFUSE_HOOK.reason, REFUSED_BY_HANDLER)


@dataclass(frozen=True, slots=True)
class IncomingPolicy:
    """
    The compiled form of a socket's C{incoming}, C{target_ip} and
    C{target_port}: exact addresses in a set, networks in a tuple.
    Build it with L{compile_policy}.
    """

    mode: IncomingMode
    addresses: frozenset[IPAddress] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    target_port: int | None = None

    @property
    def needs_peer_address(self) -> bool:
        """
        Whether L{decide} looks at the peer address at all.
        """
        return self.mode.needs_target_ip

    def matches_address(self, peer: IPAddress) -> bool:
        if peer in self.addresses:
            return True
        for network in self.networks:
            if peer in network:
                return True
        return False


def compile_policy(
    mode: IncomingMode,
    targets: Iterable[IPAddress | IPNetwork] = (),
    target_port: int | None = None,
) -> IncomingPolicy:
    """
    Split the (already normalised) targets into exact addresses and
    networks. A C{/32} or C{/128} network is stored as its address.
    """
    addresses: set[IPAddress] = set()
    networks: list[IPNetwork] = []
    for target in targets:
        if hasattr(target, "prefixlen"):
            net: IPNetwork = target  # type: ignore[assignment]
            if net.num_addresses == 1:
                addresses.add(net.network_address)
            elif net not in networks:
                networks.append(net)
        else:
            addresses.add(target)
    return IncomingPolicy(mode, frozenset(addresses), tuple(networks), target_port)


def decide(
    policy: IncomingPolicy,
    incoming_enabled: bool,
    peer: IPAddress | None,
    peer_port: int,
) -> Decision:
    """
    Decide one incoming connection or datagram (SPEC section 1, steps 1-5).

    @param policy: the socket's compiled policy.
    @param incoming_enabled: the global master switch.
    @param peer: the peer address, already normalised (IPv4-mapped forms
        as IPv4); C{None} when it is not an IP address.
    @param peer_port: the peer's port.
    """
    if not incoming_enabled:
        return REFUSE_MASTER
    mode = policy.mode
    if mode is _ANY_IP_ANY_PORT:
        return ACCEPT
    if mode is _NONE:
        return REFUSE_MODE
    if peer is None or not policy.matches_address(peer):
        return REFUSE_ADDRESS
    if mode is _SPECIFIC_IP_PORT and peer_port != policy.target_port:
        return REFUSE_PORT
    return ACCEPT


def decide_credentials(
    incoming_enabled: bool,
    mode: IncomingMode,
    uid: int | None,
    gid: int | None,
    allowed_uids: frozenset[int] | None,
    allowed_gids: frozenset[int] | None,
) -> Decision:
    """
    The decision for a local (UNIX) socket: the master switch, mode
    C{none}, then the peer credentials. With both lists set, a peer matching
    either is allowed; with one list, it must match that one; with none,
    everyone is. C{uid}/C{gid} are C{None} when the kernel gave no
    credentials (then only a socket without lists admits the peer).
    """
    if not incoming_enabled:
        return REFUSE_MASTER
    if mode is _NONE:
        return REFUSE_MODE
    if allowed_uids is None and allowed_gids is None:
        return ACCEPT
    if uid is not None and allowed_uids is not None and uid in allowed_uids:
        return ACCEPT
    if gid is not None and allowed_gids is not None and gid in allowed_gids:
        return ACCEPT
    return REFUSE_CREDENTIALS


def check_limits(
    open_total: int,
    max_total: int | None,
    open_from_peer: int = 0,
    max_per_peer: int | None = None,
) -> Decision:
    """
    Step 6 of the decision: the per-peer limit, then the socket's limit.
    What a full socket does (reset on data ports, wait on http ports) is the
    caller's business.
    """
    if max_per_peer is not None and open_from_peer >= max_per_peer:
        return REFUSE_PER_IP
    if max_total is not None and open_total >= max_total:
        return REFUSE_FULL
    return ACCEPT
