"""
The UDP kernel prefilter: a classic BPF program compiled from an incoming
policy (pure; attaching it is the network layer's job).

The program runs in the kernel on every datagram before it is queued to the
socket: offset 0 is the UDP header (source port at 0), the IP header is
reached through C{SKF_NET_OFF}. It implements the same decision as
L{twisted_sock.policy.incoming.decide} for the master switch and the modes,
and is never stricter: anything it is unsure of (an IPv4-mapped IPv6
source) is passed up for the Python check, which stays the authority.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from twisted_sock.policy.incoming import IncomingMode, IncomingPolicy

#: One instruction: (code, jt, jf, k), as in C{struct sock_filter}.
Insn = tuple[int, int, int, int]

SKF_NET_OFF = -0x100000
BPF_MAXINSNS = 4096
ACCEPT = 0xFFFFFFFF
DROP = 0

LD_W_ABS = 0x20
LD_H_ABS = 0x28
LD_B_ABS = 0x30
ALU_RSH_K = 0x74
ALU_AND_K = 0x54
ALU_XOR_X = 0xAC
ALU_MOD_K = 0x94
JMP_JA = 0x05
JMP_JEQ_K = 0x15
RET_K = 0x06
MISC_TAX = 0x07
JMP_JSET_K = 0x45
MISC_TXA = 0x87
RET_A = 0x16


def net_offset(offset: int) -> int:
    """
    The load offset of byte C{offset} of the network (IP) header.
    """
    return (SKF_NET_OFF + offset) & 0xFFFFFFFF


def _words(address: Any) -> list[int]:
    packed = (address.network_address if isinstance(address, ipaddress.IPv6Network) else address).packed
    return [int.from_bytes(packed[i:i + 4], "big") for i in range(0, 16, 4)]


class _Program:
    """
    An instruction list with symbolic forward jumps (C{ja} to a label).
    """

    def __init__(self) -> None:
        self.insns: list[list[int]] = []
        self.fixups: list[tuple[int, str]] = []
        self.labels: dict[str, int] = {}

    def emit(self, code: int, jt: int = 0, jf: int = 0, k: int = 0) -> None:
        self.insns.append([code, jt, jf, k & 0xFFFFFFFF])

    def jump(self, label: str) -> None:
        self.fixups.append((len(self.insns), label))
        self.emit(JMP_JA)

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insns)

    def finish(self) -> list[Insn]:
        for index, label in self.fixups:
            self.insns[index][3] = self.labels[label] - index - 1
        return [(c, jt, jf, k) for c, jt, jf, k in self.insns]


def build_filter(policy: IncomingPolicy, incoming_enabled: bool = True) -> list[Insn] | None:
    """
    The prefilter program for C{policy}, or C{None} when no filter is
    wanted (C{any-ip-any-port} with the master switch on: everything passes).
    C{None} is also returned when the program would exceed the kernel's
    instruction limit (the Python check alone then decides).
    """
    if not incoming_enabled or policy.mode is IncomingMode.NONE:
        return [(RET_K, 0, 0, DROP)]
    if policy.mode is IncomingMode.ANY_IP_ANY_PORT:
        return None
    v4_addrs: list[Any] = sorted(a for a in policy.addresses if a.version == 4)
    v6_addrs: list[Any] = sorted(a for a in policy.addresses if a.version == 6)
    v4_nets: list[Any] = [n for n in policy.networks if n.version == 4]
    v6_nets: list[Any] = [n for n in policy.networks if n.version == 6]

    p = _Program()
    p.emit(LD_B_ABS, k=net_offset(0))
    p.emit(ALU_RSH_K, k=4)
    p.emit(JMP_JEQ_K, 0, 1, 4)
    p.jump("v4")
    p.emit(JMP_JEQ_K, 0, 1, 6)
    p.jump("v6")
    p.emit(RET_K, k=DROP)

    p.label("v4")
    p.emit(LD_W_ABS, k=net_offset(12))
    for addr in v4_addrs:
        p.emit(JMP_JEQ_K, 0, 1, int(addr))
        p.jump("match")
    if v4_nets:
        p.emit(MISC_TAX)
        for net in v4_nets:
            p.emit(MISC_TXA)
            p.emit(ALU_AND_K, k=int(net.netmask))
            p.emit(JMP_JEQ_K, 0, 1, int(net.network_address))
            p.jump("match")
    p.emit(RET_K, k=DROP)

    p.label("v6")
    # An IPv4-mapped source (::ffff:a.b.c.d) is left to the Python check.
    p.emit(LD_W_ABS, k=net_offset(8))
    p.emit(JMP_JEQ_K, 0, 5, 0)
    p.emit(LD_W_ABS, k=net_offset(12))
    p.emit(JMP_JEQ_K, 0, 3, 0)
    p.emit(LD_W_ABS, k=net_offset(16))
    p.emit(JMP_JEQ_K, 0, 1, 0xFFFF)
    p.emit(RET_K, k=ACCEPT)
    for addr in v6_addrs:
        for i, word in enumerate(_words(addr)):
            p.emit(LD_W_ABS, k=net_offset(8 + 4 * i))
            p.emit(JMP_JEQ_K, 0, 7 - 2 * i, word)
        p.jump("match")
    for net in v6_nets:
        masks = _words(ipaddress.IPv6Address(int(net.netmask)))
        for i, (word, mask) in enumerate(zip(_words(net), masks, strict=True)):
            p.emit(LD_W_ABS, k=net_offset(8 + 4 * i))
            p.emit(ALU_AND_K, k=mask)
            p.emit(JMP_JEQ_K, 0, 10 - 3 * i, word)
        p.jump("match")
    p.emit(RET_K, k=DROP)

    p.label("match")
    if policy.mode is IncomingMode.SPECIFIC_IP_PORT:
        p.emit(LD_H_ABS, k=0)
        p.emit(JMP_JEQ_K, 0, 1, policy.target_port or 0)
        p.emit(RET_K, k=ACCEPT)
        p.emit(RET_K, k=DROP)
    else:
        p.emit(RET_K, k=ACCEPT)
    program = p.finish()
    if len(program) > BPF_MAXINSNS:
        return None
    return program


#: TCP header flags.
TCP_SYN = 0x02
TCP_ACK = 0x10


def syn_drop_filter() -> list[Insn]:
    """
    A filter for a TCP listening socket that is about to close: a new
    connection attempt (a SYN without ACK) is dropped -- the client's SYN
    goes unanswered and its retry finds the port closed, so it never sees
    a connect that succeeds and is then reset -- while every other segment
    passes, so the handshakes already under way (their SYN-ACK sent)
    complete into the accept queue. On a TCP socket the filter sees the
    TCP header at offset 0; its flags are byte 13.
    """
    return [
        (LD_B_ABS, 0, 0, 13),
        (JMP_JSET_K, 2, 0, TCP_ACK),  # an ACK (a handshake's last step, data): keep
        (JMP_JSET_K, 0, 1, TCP_SYN),  # a bare SYN: drop
        (RET_K, 0, 0, DROP),
        (RET_K, 0, 0, ACCEPT),
    ]


def run_filter(program: Sequence[Insn], network_header: bytes, transport: bytes) -> Any:
    """
    Interpret a program the way the kernel does for a UDP socket filter
    (the subset of classic BPF L{build_filter} emits): C{transport} is the
    UDP header and payload (offset 0), C{network_header} the IP header
    (reached with C{SKF_NET_OFF}). C{True} when the datagram would be kept
    (a reuseport program's C{ret a}: the socket index). For tests and for
    checking a program by hand.
    """
    a = x = 0
    pc = 0

    def load(k: int, size: int) -> int:
        signed = k - (1 << 32) if k & 0x80000000 else k
        if signed >= SKF_NET_OFF and signed < 0:
            data, offset = network_header, signed - SKF_NET_OFF
        else:
            data, offset = transport, signed
        if offset < 0 or offset + size > len(data):
            raise _OutOfBounds
        return int.from_bytes(data[offset:offset + size], "big")

    try:
        while True:
            code, jt, jf, k = program[pc]
            pc += 1
            if code == LD_W_ABS:
                a = load(k, 4)
            elif code == LD_H_ABS:
                a = load(k, 2)
            elif code == LD_B_ABS:
                a = load(k, 1)
            elif code == ALU_RSH_K:
                a = (a >> k) & 0xFFFFFFFF
            elif code == ALU_AND_K:
                a &= k
            elif code == ALU_XOR_X:  # the reuseport program
                a ^= x
            elif code == ALU_MOD_K:
                a %= k
            elif code == RET_A:  # the reuseport program's socket index
                return a
            elif code == JMP_JA:
                pc += k
            elif code == JMP_JEQ_K:
                pc += jt if a == k else jf
            elif code == JMP_JSET_K:
                pc += jt if a & k else jf
            elif code == MISC_TAX:
                x = a
            elif code == MISC_TXA:
                a = x
            elif code == RET_K:
                return k != 0
            else:
                raise ValueError(f"unknown BPF instruction {code:#x}")
    except _OutOfBounds:
        return False  # the kernel drops a packet when a load is out of bounds


class _OutOfBounds(Exception):
    pass
