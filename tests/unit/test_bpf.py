"""
The UDP prefilter program builder, checked by interpreting the programs
over sample packets (IPv4, IPv6, IPv4-mapped sources; right and wrong
ports) and comparing with the Python decision, which stays the authority:
the filter must never drop what the Python check accepts.
"""

from __future__ import annotations

import ipaddress
import itertools
import struct

import pytest

from twisted_sock.config.values import target_list
from twisted_sock.policy.addresses import parse_peer_host
from twisted_sock.policy.bpf import (
    ACCEPT,
    BPF_MAXINSNS,
    DROP,
    JMP_JA,
    RET_K,
    build_filter,
    run_filter,
)
from twisted_sock.policy.incoming import IncomingMode, compile_policy, decide


def ip_header(source: str) -> bytes:
    """
    A minimal IPv4 or IPv6 header with the given source address.
    """
    address = ipaddress.ip_address(source)
    if address.version == 4:
        return bytes([0x45]) + b"\0" * 11 + address.packed + bytes([127, 0, 0, 1])
    return bytes([0x60]) + b"\0" * 7 + address.packed + ipaddress.IPv6Address("::1").packed


def udp_header(source_port: int) -> bytes:
    return struct.pack("!HHHH", source_port, 9999, 8, 0)


SOURCES = [
    "127.0.0.1", "127.0.0.2", "10.1.2.3", "10.255.255.255", "11.0.0.1", "192.168.1.40",
    "::1", "::2", "2001:db8::1", "2001:db8:ffff::1", "2001:db9::1", "fe80::1",
    "::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:8.8.8.8",
]
PORTS = [5000, 5001, 1]
TARGET_SETS = [
    ["127.0.0.1"],
    ["10.0.0.0/8", "::1"],
    ["2001:db8::/32", "192.168.1.40", "127.0.0.0/31"],
    ["::ffff:10.0.0.0/104"],
    ["::1", "::2", "fe80::1"],
]


@pytest.mark.parametrize("targets", TARGET_SETS, ids=lambda t: ",".join(t))
@pytest.mark.parametrize("mode", [IncomingMode.SPECIFIC_IP_PORT, IncomingMode.SPECIFIC_IP_ANY_PORT])
def test_filter_agrees_with_python_decision(mode, targets):
    """
    For every source address and port: the filter keeps a datagram exactly
    when the Python decision accepts it, except for IPv4-mapped IPv6
    sources, which it always passes up (never stricter than Python).
    """
    policy = compile_policy(mode, target_list(targets), 5000)
    program = build_filter(policy)
    assert program is not None
    for source, port in itertools.product(SOURCES, PORTS):
        kept = run_filter(program, ip_header(source), udp_header(port))
        python = decide(policy, True, parse_peer_host(source), port).accepted
        if source.startswith("::ffff:"):
            assert kept, source
        else:
            assert kept == python, (source, port, kept, python)


def test_any_mode_needs_no_filter():
    """
    any-ip-any-port with the master switch on: no filter (None = detach).
    """
    assert build_filter(compile_policy(IncomingMode.ANY_IP_ANY_PORT)) is None


@pytest.mark.parametrize(
    "mode, enabled",
    [(IncomingMode.NONE, True), (IncomingMode.ANY_IP_ANY_PORT, False),
     (IncomingMode.SPECIFIC_IP_ANY_PORT, False)],
)
def test_refuse_everything_is_one_instruction(mode, enabled):
    """
    Mode none, or the master switch off: a single "drop" instruction that
    drops every sample packet.
    """
    policy = compile_policy(mode, target_list(["127.0.0.1"]) if mode.needs_target_ip else ())
    program = build_filter(policy, enabled)
    assert program == [(RET_K, 0, 0, DROP)]
    assert not any(run_filter(program, ip_header(s), udp_header(5000)) for s in SOURCES)


def test_port_check_uses_the_udp_source_port():
    """
    specific-ip-port loads the source port from offset 0 of the UDP header
    (the kernel's view for socket filters).
    """
    policy = compile_policy(IncomingMode.SPECIFIC_IP_PORT, target_list(["127.0.0.1"]), 4242)
    program = build_filter(policy)
    assert run_filter(program, ip_header("127.0.0.1"), udp_header(4242))
    assert not run_filter(program, ip_header("127.0.0.1"), udp_header(4243))
    assert program[-2:] == [(RET_K, 0, 0, ACCEPT), (RET_K, 0, 0, DROP)]


def test_truncated_packet_is_dropped_like_the_kernel():
    """
    A load beyond the packet ends the program with "drop", as in the kernel.
    """
    policy = compile_policy(IncomingMode.SPECIFIC_IP_ANY_PORT, target_list(["127.0.0.1"]))
    assert not run_filter(build_filter(policy), b"\x45", b"")


def test_jumps_stay_inside_the_program():
    """
    Every jump of a large program lands on an instruction of the program;
    conditional offsets fit in 8 bits.
    """
    many = [f"10.{i // 256}.{i % 256}.1" for i in range(300)] + [f"2001:db8::{i:x}" for i in range(100)]
    program = build_filter(compile_policy(IncomingMode.SPECIFIC_IP_ANY_PORT, target_list(many)))
    assert program is not None and len(program) <= BPF_MAXINSNS
    for pc, (code, jt, jf, k) in enumerate(program):
        assert 0 <= jt < 256 and 0 <= jf < 256
        if code == JMP_JA:
            assert pc + 1 + k < len(program)
        elif code != RET_K:
            assert pc + 1 + max(jt, jf) < len(program)
    assert run_filter(program, ip_header("10.1.43.1"), udp_header(1))
    assert run_filter(program, ip_header("2001:db8::63"), udp_header(1))
    assert not run_filter(program, ip_header("10.1.44.1"), udp_header(1))
    assert not run_filter(program, ip_header("2001:db8::64"), udp_header(1))


def test_too_large_program_falls_back_to_python():
    """
    More targets than the kernel's instruction limit allows: no filter
    (the Python check alone decides) rather than an invalid program.
    """
    many = [f"2001:db8::{i:x}" for i in range(600)]
    assert build_filter(compile_policy(IncomingMode.SPECIFIC_IP_ANY_PORT, target_list(many))) is None


def _tcp_header(flags: int) -> bytes:
    """
    A 20-byte TCP header with C{flags} (ports 1 and 2).
    """
    return struct.pack("!HHIIBBHHH", 1, 2, 0, 0, 5 << 4, flags, 65535, 0, 0)


@pytest.mark.parametrize("flags, kept", [
    (0x02, False),  # SYN: a new connection attempt
    (0x12, True),   # SYN+ACK
    (0x10, True),   # ACK: the last step of a handshake under way
    (0x18, True),   # PSH+ACK: data
    (0x11, True),   # FIN+ACK
    (0x04, True),   # RST
])
def test_syn_drop_filter(flags, kept):
    """
    The filter of a stopping TCP listener drops a bare SYN (a new
    connection attempt) and keeps every other segment, so the handshakes
    under way complete.
    """
    from twisted_sock.policy.bpf import syn_drop_filter

    assert run_filter(syn_drop_filter(), b"", _tcp_header(flags)) is kept
