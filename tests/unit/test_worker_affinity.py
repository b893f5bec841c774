"""
The reuseport program (L{twisted_sock.workers.affinity}): run in the
project's classic-BPF interpreter, it sends every source address to one
worker, the same each time, spreads addresses over every worker, and
hashes the IPv4 source of IPv4 packets on a dual-stack socket.
"""

from __future__ import annotations

import ipaddress

import pytest

from tests.unit.test_bpf import ip_header
from twisted_sock.policy.bpf import run_filter
from twisted_sock.workers.affinity import reuseport_program


def expected(source: str, workers: int) -> int:
    """
    The hash the program computes, in Python: the IPv4 source word, or the
    four IPv6 source words XORed, modulo the worker count.
    """
    packed = ipaddress.ip_address(source).packed
    words = [int.from_bytes(packed[i:i + 4], "big") for i in range(0, len(packed), 4)]
    value = 0
    for word in words:
        value ^= word
    return value % workers


SOURCES = ["127.0.0.1", "127.0.0.2", "10.9.8.7", "255.255.255.255", "::1", "::2",
           "2001:db8::1", "fe80::1234:5678", "::ffff:127.0.0.1"]


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("source", SOURCES)
def test_index_is_the_source_hash(source, workers):
    """
    The program returns hash(source) % workers for IPv4 and IPv6 headers.
    """
    program = reuseport_program(workers)
    assert run_filter(program, ip_header(source), b"") == expected(source, workers)


def test_many_sources_reach_every_worker():
    """
    127.0.0.1 .. 127.0.0.40 spread over every one of 2 and of 3 workers.
    """
    for workers in (2, 3):
        program = reuseport_program(workers)
        seen = {run_filter(program, ip_header(f"127.0.0.{n}"), b"") for n in range(1, 41)}
        assert seen == set(range(workers))


def test_ipv4_packet_is_hashed_as_ipv4():
    """
    An IPv4 header (version 4) hashes its 4-byte source, whatever follows:
    the version nibble is what chooses, as on a dual-stack socket.
    """
    program = reuseport_program(5)
    header = ip_header("10.0.0.3") + b"\xff" * 40
    assert run_filter(program, header, b"") == expected("10.0.0.3", 5)


def test_workers_must_be_positive():
    """
    A program for zero workers is refused.
    """
    with pytest.raises(ValueError):
        reuseport_program(0)
