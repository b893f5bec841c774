"""
Tests for the pure status renderers (L{render_json}, L{render_metrics},
L{render_html}) over hand-built statistics snapshots.
"""

from __future__ import annotations

import json
import os
from types import MappingProxyType

import pytest
from prometheus_client.parser import text_string_to_metric_families

import twisted_sock
from twisted_sock.reasons import ShutdownReason
from twisted_sock.stats import ListenerInfo, ServiceStatistics, SocketStatistics, closed_counts
from twisted_sock.web.render import render_html, render_json, render_metrics


def _socket(name: str = "sock0", **kwargs) -> SocketStatistics:
    fields = dict(
        name=name,
        protocol="tcp",
        incoming="any-ip-any-port",
        listeners=(ListenerInfo("127.0.0.1", 8001, "data"), ListenerInfo("::1", 8080, "http")),
        connections=2,
        accepted=5,
        refused=3,
        tls_failures=0,
        closed=closed_counts({ShutdownReason.NORMAL: 4, ShutdownReason.BY_PEER: 1}),
        refused_by=MappingProxyType({"address-not-allowed": 2, "mode-none": 1}),
    )
    fields.update(kwargs)
    return SocketStatistics(**fields)


def _stats(*sockets: SocketStatistics, incoming_enabled: bool = True) -> ServiceStatistics:
    return ServiceStatistics(incoming_enabled, sockets or (_socket(),))


ALL_REASONS_ZERO = {r.name: 0 for r in ShutdownReason}
#: The keys issue 16 added to each socket, as a socket without them shows them.
NEW_KEYS = {
    "kernel_drops": None,
    "bytes_in": 0,
    "bytes_out": 0,
    "durations": {"buckets": {"0.01": 0, "0.1": 0, "1.0": 0, "10.0": 0, "60.0": 0, "300.0": 0,
                              "1800.0": 0, "3600.0": 0, "+Inf": 0}, "sum": 0.0, "count": 0},
    "limits": {},
    "by_mode": {},
    "open": [],
}


# --------------------------------------------------------------------------
# JSON

def test_json_schema():
    """
    C{/status.json} has the keys of SPEC section 5: the master switch and,
    per socket, name, protocol, incoming, listeners (address, port, mode,
    tls), connections, accepted, refused, tls_failures and closed counts by
    ShutdownReason name (zeros included).
    """
    body = render_json(_stats())
    assert body.endswith(b"\n")
    doc = json.loads(body)
    assert doc.pop("version") == twisted_sock.__version__
    assert doc.pop("pid") == os.getpid()
    assert 0 <= doc.pop("uptime") < 3600 * 24 * 365
    for sock in doc["sockets"]:
        for key, value in NEW_KEYS.items():
            assert sock.pop(key) == value, key
    assert doc == {
        "incoming_enabled": True,
        "sockets": [
            {
                "name": "sock0",
                "protocol": "tcp",
                "incoming": "any-ip-any-port",
                "listeners": [
                    {"address": "127.0.0.1", "port": 8001, "mode": "data", "tls": False},
                    {"address": "::1", "port": 8080, "mode": "http", "tls": False},
                ],
                "connections": 2,
                "accepted": 5,
                "refused": 3,
                "tls_failures": 0,
                "closed": {**ALL_REASONS_ZERO, "NORMAL": 4, "BY_PEER": 1},
                "refused_by": {"address-not-allowed": 2, "mode-none": 1},
            }
        ],
        "retired": [],
    }


def test_json_spec_keys_present():
    """
    Every key the SPEC example shows is present with the SPEC's JSON type.
    """
    doc = json.loads(render_json(_stats(incoming_enabled=False)))
    assert doc["incoming_enabled"] is False
    (sock,) = doc["sockets"]
    spec_keys = {"name": str, "protocol": str, "incoming": str, "listeners": list, "connections": int,
                 "accepted": int, "refused": int, "tls_failures": int, "closed": dict}
    for key, kind in spec_keys.items():
        assert isinstance(sock[key], kind), key
    for listener in sock["listeners"]:
        assert set(listener) == {"address", "port", "mode", "tls"}


def test_json_tls_listener_fingerprint():
    """
    A TLS listener carries its fingerprint; a plain one has no such key.
    """
    fp = ":".join(["AB"] * 32)
    sock = _socket(listeners=(ListenerInfo("127.0.0.1", 8443, "data", tls=True, fingerprint=fp),
                              ListenerInfo("127.0.0.1", 8001, "data")))
    listeners = json.loads(render_json(_stats(sock)))["sockets"][0]["listeners"]
    assert listeners == [
        {"address": "127.0.0.1", "port": 8443, "mode": "data", "tls": True, "fingerprint": fp},
        {"address": "127.0.0.1", "port": 8001, "mode": "data", "tls": False},
    ]


def test_json_no_sockets():
    """
    A service without sockets renders an empty list.
    """
    doc = json.loads(render_json(ServiceStatistics(True, ())))
    assert {k: doc[k] for k in ("incoming_enabled", "sockets", "retired")} == {
        "incoming_enabled": True, "sockets": [], "retired": []}


# --------------------------------------------------------------------------
# Prometheus text format (through prometheus_client; test_metrics.py has more)


def _parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """
    The samples of C{text}, read by C{prometheus_client}'s parser, keyed by
    sample name and label set.
    """
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_metrics_valid_and_exact():
    """
    C{/metrics} parses with the snapshot's exact values in the families
    that existed before issue 16 (names kept for dashboards).
    """
    samples = _parse(render_metrics(_stats()).decode("utf-8"))
    expected = {
        _key("twisted_sock_incoming_enabled"): 1,
        _key("twisted_sock_connections", socket="sock0"): 2,
        _key("twisted_sock_listeners", socket="sock0"): 2,
        _key("twisted_sock_accepted_total", socket="sock0"): 5,
        _key("twisted_sock_refused_total", socket="sock0"): 3,
        _key("twisted_sock_tls_failures_total", socket="sock0"): 0,
        _key("twisted_sock_refused_by_total", socket="sock0", reason="address-not-allowed"): 2,
        _key("twisted_sock_refused_by_total", socket="sock0", reason="mode-none"): 1,
    }
    for reason in ShutdownReason:
        count = {"NORMAL": 4, "BY_PEER": 1}.get(reason.name, 0)
        expected[_key("twisted_sock_closed_total", socket="sock0", reason=reason.name)] = count
    assert {k: samples.get(k) for k in expected} == expected


def test_metrics_types():
    """
    The families that existed before keep their names and types.
    """
    text = render_metrics(_stats()).decode("utf-8")
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert {k: types.get(k) for k in (
        "twisted_sock_incoming_enabled", "twisted_sock_connections", "twisted_sock_listeners",
        "twisted_sock_accepted", "twisted_sock_refused", "twisted_sock_tls_failures",
        "twisted_sock_refused_by", "twisted_sock_closed", "twisted_sock_retired_connections")} == {
        "twisted_sock_incoming_enabled": "gauge",
        "twisted_sock_connections": "gauge",
        "twisted_sock_listeners": "gauge",
        "twisted_sock_accepted": "counter",
        "twisted_sock_refused": "counter",
        "twisted_sock_tls_failures": "counter",
        "twisted_sock_refused_by": "counter",
        "twisted_sock_closed": "counter",
        "twisted_sock_retired_connections": "gauge",
    }


def test_metrics_master_switch_off():
    """
    The master switch shows as 0 when off.
    """
    samples = _parse(render_metrics(_stats(incoming_enabled=False)).decode("utf-8"))
    assert samples[_key("twisted_sock_incoming_enabled")] == 0


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        ('we"ird', r'we\"ird'),
        ("back\\slash", r"back\\slash"),
        ("new\nline", r"new\nline"),
        ('a"b\\c\nd', r'a\"b\\c\nd'),
        ("plain", "plain"),
    ],
)
def test_metrics_label_escaping(name, escaped):
    """
    Label values escape quote, backslash and newline as the format requires,
    so a strange socket name cannot break the output; reading it back
    gives the original name.
    """
    sock = _socket(name, refused_by=MappingProxyType({}), closed=MappingProxyType({"NORMAL": 1}))
    text = render_metrics(_stats(sock)).decode("utf-8")
    assert f'twisted_sock_connections{{socket="{escaped}"}} 2.0\n' in text
    samples = _parse(text)
    assert samples[_key("twisted_sock_closed_total", socket=name, reason="NORMAL")] == 1


def test_metrics_two_sockets_grouped():
    """
    With two sockets every family keeps its samples together, one per
    socket.
    """
    text = render_metrics(_stats(_socket("a"), _socket("b", connections=7))).decode("utf-8")
    samples = _parse(text)
    assert samples[_key("twisted_sock_connections", socket="a")] == 2
    assert samples[_key("twisted_sock_connections", socket="b")] == 7


def test_retired_sockets_rendered():
    """
    Removed sockets whose connections are still open are listed under
    C{retired} in the JSON (apart from C{sockets}, so a name can be in
    both), counted per name in C{twisted_sock_retired_connections} (one
    sample per name even when retired twice) and listed on the page.
    """
    gone = _socket("gone", listeners=(), connections=1)
    stats = ServiceStatistics(True, (_socket("gone"),), (gone, _socket("gone", listeners=(), connections=2),
                                                          _socket("old", listeners=(), connections=1)))
    doc = json.loads(render_json(stats))
    assert [s["name"] for s in doc["sockets"]] == ["gone"]
    assert [(s["name"], s["connections"], s["listeners"]) for s in doc["retired"]] == [
        ("gone", 1, []), ("gone", 2, []), ("old", 1, [])]
    samples = _parse(render_metrics(stats).decode("utf-8"))
    assert samples[_key("twisted_sock_retired_connections", socket="gone")] == 3
    assert samples[_key("twisted_sock_retired_connections", socket="old")] == 1
    assert samples[_key("twisted_sock_connections", socket="gone")] == 2
    page = render_html(stats).decode("utf-8")
    assert "Removed sockets still draining" in page
    assert '<tr><td>old</td><td class="num">1</td></tr>' in page
    assert "draining" not in render_html(_stats()).decode("utf-8")
