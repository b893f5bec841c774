"""
Tests for the pure status renderers (L{render_json}, L{render_metrics},
L{render_html}) over hand-built statistics snapshots.
"""

from __future__ import annotations

import json
import re
from types import MappingProxyType

import pytest

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
    assert json.loads(body) == {
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
    assert json.loads(render_json(ServiceStatistics(True, ()))) == {"incoming_enabled": True, "sockets": [],
                                                                   "retired": []}


# --------------------------------------------------------------------------
# Prometheus text format

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_VALUE = r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_SAMPLE = re.compile(rf"^({_NAME})(\{{{_LABEL}(?:,{_LABEL})*\}})? ({_VALUE})$")
_COMMENT = re.compile(rf"^# (HELP|TYPE) ({_NAME}) (.+)$")
_LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def _unescape(value: str) -> str:
    return re.sub(r"\\([\\\"n])", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """
    A strict reader of the text format: every line is HELP, TYPE or a
    sample; HELP and TYPE come once per family, before its samples; the
    samples of one family are contiguous.
    """
    assert text.endswith("\n")
    samples = {}
    typed: dict[str, str] = {}
    helped: set[str] = set()
    finished: set[str] = set()
    current = None
    for line in text[:-1].split("\n"):
        comment = _COMMENT.match(line)
        if comment:
            kind, name, rest = comment.groups()
            if kind == "HELP":
                assert name not in helped, f"two HELP lines for {name}"
                helped.add(name)
            else:
                assert name not in typed, f"two TYPE lines for {name}"
                assert rest in ("counter", "gauge"), line
                typed[name] = rest
            continue
        sample = _SAMPLE.match(line)
        assert sample, f"not a valid sample line: {line!r}"
        name, labels, value = sample.groups()
        assert name in typed and name in helped, f"{name} sampled before its HELP/TYPE"
        if name != current:
            assert name not in finished, f"samples of {name} are not contiguous"
            if current is not None:
                finished.add(current)
            current = name
        pairs = tuple((k, _unescape(v)) for k, v in _LABEL_PAIR.findall(labels or ""))
        key = (name, pairs)
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value)
    return samples


def test_metrics_valid_and_exact():
    """
    C{/metrics} is valid Prometheus text format (every line HELP, TYPE or
    C{name{labels} value}, HELP/TYPE before samples) with the snapshot's
    exact values.
    """
    text = render_metrics(_stats()).decode("utf-8")
    samples = _parse(text)
    s = (("socket", "sock0"),)
    expected = {
        ("twisted_sock_incoming_enabled", ()): 1,
        ("twisted_sock_connections", s): 2,
        ("twisted_sock_listeners", s): 2,
        ("twisted_sock_accepted_total", s): 5,
        ("twisted_sock_refused_total", s): 3,
        ("twisted_sock_tls_failures_total", s): 0,
        ("twisted_sock_refused_by_total", s + (("reason", "address-not-allowed"),)): 2,
        ("twisted_sock_refused_by_total", s + (("reason", "mode-none"),)): 1,
    }
    for reason in ShutdownReason:
        count = {"NORMAL": 4, "BY_PEER": 1}.get(reason.name, 0)
        expected[("twisted_sock_closed_total", s + (("reason", reason.name),))] = count
    assert samples == expected


def test_metrics_types():
    """
    Gauges are typed gauge and counters (C{_total}) counter.
    """
    text = render_metrics(_stats()).decode("utf-8")
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert types == {
        "twisted_sock_incoming_enabled": "gauge",
        "twisted_sock_connections": "gauge",
        "twisted_sock_listeners": "gauge",
        "twisted_sock_accepted_total": "counter",
        "twisted_sock_refused_total": "counter",
        "twisted_sock_tls_failures_total": "counter",
        "twisted_sock_refused_by_total": "counter",
        "twisted_sock_closed_total": "counter",
        "twisted_sock_retired_connections": "gauge",
    }


def test_metrics_master_switch_off():
    """
    The master switch shows as 0 when off.
    """
    samples = _parse(render_metrics(_stats(incoming_enabled=False)).decode("utf-8"))
    assert samples[("twisted_sock_incoming_enabled", ())] == 0


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
    assert f'twisted_sock_connections{{socket="{escaped}"}} 2\n' in text
    samples = _parse(text)
    assert samples[("twisted_sock_closed_total", (("socket", name), ("reason", "NORMAL")))] == 1


def test_metrics_two_sockets_grouped():
    """
    With two sockets every family keeps its samples together, one per
    socket.
    """
    text = render_metrics(_stats(_socket("a"), _socket("b", connections=7))).decode("utf-8")
    samples = _parse(text)
    assert samples[("twisted_sock_connections", (("socket", "a"),))] == 2
    assert samples[("twisted_sock_connections", (("socket", "b"),))] == 7


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
    assert samples[("twisted_sock_retired_connections", (("socket", "gone"),))] == 3
    assert samples[("twisted_sock_retired_connections", (("socket", "old"),))] == 1
    assert samples[("twisted_sock_connections", (("socket", "gone"),))] == 2
    page = render_html(stats).decode("utf-8")
    assert "Removed sockets still draining" in page
    assert "<tr><td>old</td><td class=num>1</td></tr>" in page
    assert "draining" not in render_html(_stats()).decode("utf-8")


# --------------------------------------------------------------------------
# HTML

def test_html_escapes_socket_fields():
    """
    Every text that comes from configuration or the network (socket name,
    protocol, incoming, listener address and mode, reason names) is HTML
    escaped.
    """
    sock = _socket(
        "<b>",
        protocol="<i>tcp",
        incoming="a&b",
        listeners=(ListenerInfo("<script>alert(1)</script>", 8001, "<u>data"),),
        closed=MappingProxyType({"<em>": 1}),
        refused_by=MappingProxyType({"\"'x": 2}),
    )
    page = render_html(_stats(sock)).decode("utf-8")
    for raw in ("<b>", "<i>", "<script>", "<u>", "<em>", "a&b", "\"'x"):
        assert raw not in page
    for escaped in ("Socket &lt;b&gt;", "(&lt;i&gt;tcp, incoming a&amp;b)",
                    "&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;u&gt;data", "&lt;em&gt; 1",
                    "&quot;&#x27;x 2"):
        assert escaped in page


def test_html_content():
    """
    The page shows each socket's counters and listeners, the master switch
    and refreshes itself.
    """
    page = render_html(_stats(), refresh=7).decode("utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta http-equiv="refresh" content="7">' in page
    assert "Incoming connections: enabled." in page
    assert "<h2>Socket sock0 <small>(tcp, incoming any-ip-any-port)</small></h2>" in page
    assert ("<tr><td class=num>2</td><td class=num>5</td><td class=num>3</td>"
            "<td class=num>0</td></tr>") in page
    empty_fp = "<td><code></code></td>"
    assert f"<tr><td>127.0.0.1</td><td class=num>8001</td><td>data</td><td>no</td>{empty_fp}</tr>" in page
    assert f"<tr><td>::1</td><td class=num>8080</td><td>http</td><td>no</td>{empty_fp}</tr>" in page
    assert "Closed by reason: NORMAL 4, BY_PEER 1." in page
    assert "Refused by reason: address-not-allowed 2, mode-none 1." in page


def test_html_master_off_and_empty():
    """
    With the master switch off the page says so; a socket without listeners
    or counts shows "none".
    """
    sock = _socket(listeners=(), closed=closed_counts({}), refused_by=MappingProxyType({}))
    page = render_html(_stats(sock, incoming_enabled=False)).decode("utf-8")
    assert 'Incoming connections: <span class="off">disabled (master switch off)</span>.' in page
    assert "<tr><td colspan=5>none</td></tr>" in page
    assert "Closed by reason: none.<br>Refused by reason: none." in page


@pytest.mark.parametrize(
    "text",
    [
        "twisted_sock_x 1\n",
        "# HELP twisted_sock_x h\n# TYPE twisted_sock_x gauge\ntwisted_sock_x{socket=\"a\"b\"} 1\n",
        "# HELP twisted_sock_x h\n# TYPE twisted_sock_x gauge\ntwisted_sock_x{socket=\"a\"}\n",
        "# HELP twisted_sock_x h\n# TYPE twisted_sock_x gauge\ntwisted_sock_x 1",
        "# HELP a h\n# TYPE a gauge\n# HELP b h\n# TYPE b gauge\na 1\nb 1\na{s=\"x\"} 2\n",
        "# HELP a h\n# TYPE a gauge\n# TYPE a counter\na 1\n",
    ],
)
def test_metrics_reader_is_strict(text):
    """
    The reader used above refuses a sample before its TYPE, an unescaped
    quote, a missing value, a missing final newline, a family split in two
    and a repeated TYPE, so the validity test can fail.
    """
    with pytest.raises(AssertionError):
        _parse(text)
