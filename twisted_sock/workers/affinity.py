"""
Peer affinity: the classic-BPF reuseport program that sends every
connection (or datagram) from one source address to the same worker.

Each listener is opened as N C{SO_REUSEPORT} sockets, one per worker, in
worker order; the kernel runs this program (C{SO_ATTACH_REUSEPORT_CBPF})
on the first packet of a connection and takes its result as the index of
the socket in the group. The program hashes the source address reached
through C{SKF_NET_OFF}: the IPv4 source word, or the four IPv6 source words
XORed, modulo N. The IP version nibble is checked, so IPv4 packets on a
dual-stack C{::} socket hash their IPv4 source.
"""

from __future__ import annotations

import ctypes
import socket

from twisted_sock.policy.bpf import (
    ALU_MOD_K,
    ALU_RSH_K,
    ALU_XOR_X,
    JMP_JA,
    JMP_JEQ_K,
    LD_B_ABS,
    LD_W_ABS,
    MISC_TAX,
    RET_A,
    Insn,
    net_offset,
)

#: C{SO_ATTACH_REUSEPORT_CBPF} (Linux >= 4.5; not in the socket module).
SO_ATTACH_REUSEPORT_CBPF = 51


def reuseport_program(workers: int) -> list[Insn]:
    """
    The program for C{workers} sockets: returns hash(source address) %
    C{workers}.
    """
    if workers < 1:
        raise ValueError("workers must be positive")
    return [
        (LD_B_ABS, 0, 0, net_offset(0)),       # version nibble
        (ALU_RSH_K, 0, 0, 4),
        (JMP_JEQ_K, 0, 11, 6),           # IPv6: next; else to the IPv4 load
        (LD_W_ABS, 0, 0, net_offset(8)),       # IPv6 source: four words XORed
        (MISC_TAX, 0, 0, 0),
        (LD_W_ABS, 0, 0, net_offset(12)),
        (ALU_XOR_X, 0, 0, 0),
        (MISC_TAX, 0, 0, 0),
        (LD_W_ABS, 0, 0, net_offset(16)),
        (ALU_XOR_X, 0, 0, 0),
        (MISC_TAX, 0, 0, 0),
        (LD_W_ABS, 0, 0, net_offset(20)),
        (ALU_XOR_X, 0, 0, 0),
        (JMP_JA, 0, 0, 1),               # over the IPv4 load
        (LD_W_ABS, 0, 0, net_offset(12)),      # IPv4 source
        (ALU_MOD_K, 0, 0, workers),
        (RET_A, 0, 0, 0),
    ]


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def attach_reuseport_program(sock: socket.socket, program: list[Insn]) -> None:
    """
    Attach C{program} to the reuseport group of C{sock} (the kernel copies
    it: the buffers need not outlive the call).
    """
    array = (_SockFilter * len(program))(*[_SockFilter(*insn) for insn in program])
    fprog = _SockFprog(len(program), array)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF,
                    ctypes.string_at(ctypes.addressof(fprog), ctypes.sizeof(fprog)))
