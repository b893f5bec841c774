"""
The status page, the rates and the figures collected at close, over
hand-built snapshots (no sockets).
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from tests.unit.test_render import _socket, _stats
from twisted_sock.net.figures import ClosedFigures
from twisted_sock.stats import DURATION_BUCKETS, ListenerInfo, OpenConnection, ServiceStatistics
from twisted_sock.web.page import human_bytes, human_duration
from twisted_sock.web.rates import Rates
from twisted_sock.web.render import render_html

FP = ":".join(["AB"] * 32)


def test_page_escapes_every_value():
    """
    Socket names, listener addresses, reasons and connection peers that
    contain markup reach the page escaped by the template engine: no raw
    C{<script>} anywhere.
    """
    sock = _socket(
        "<script>alert(1)</script>",
        protocol="<i>tcp",
        incoming="a&b",
        listeners=(ListenerInfo("<script>x</script>", 8001, "<u>data"),),
        closed=MappingProxyType({"<em>": 1}),
        refused_by=MappingProxyType({"\"'x": 2}),
        open=(OpenConnection("<script>peer</script>", "8001", "data", True, "<b>h2", 1.0, 5, 6),),
    )
    page = render_html(_stats(sock)).decode("utf-8")
    for raw in ("<script>", "<i>", "<u>", "<em>", "<b>h2", "a&b"):
        assert raw not in page
    for escaped in ("&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;i&gt;tcp", "a&amp;b",
                    "&lt;script&gt;x&lt;/script&gt;", "&lt;u&gt;data", "&lt;em&gt; 1",
                    "&lt;script&gt;peer&lt;/script&gt;", "TLS &lt;b&gt;h2"):
        assert escaped in page


def test_page_shows_version_pid_uptime_limits_and_refusals_apart():
    """
    The page names the version, pid and uptime; a socket's limits beside its
    open count; refusals above zero in the C{bad} class and zero counts
    not; the master switch; the refresh.
    """
    sock = _socket(limits=MappingProxyType({"max_connections": 50, "max_connections_per_ip": 3,
                                            "idle_timeout": 90.0}))
    stats = dataclasses.replace(_stats(sock), version="9.8.7", pid=4321, started=0.0)
    page = render_html(stats, refresh=7).decode("utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta http-equiv="refresh" content="7" />' in page
    assert "twisted-sock <span>9.8.7</span>" in page
    assert '<b id="pid">4321</b>' in page and '<b id="uptime">' in page
    assert "2 / 50" in page and "max 50 · per IP 3 · idle 1 min 30 s" in page
    assert '<span class="bad">3</span>' in page
    assert '<span class="zero">0</span>' in page  # no TLS failures
    assert '<b class="ok">enabled</b>' in page
    off = render_html(_stats(incoming_enabled=False)).decode("utf-8")
    assert "disabled (master switch off)" in off


def test_fingerprint_once_per_certificate():
    """
    Three TLS listeners sharing one certificate and one with another: each
    fingerprint appears once, in the certificates table, and the listeners
    name it by number.
    """
    other = ":".join(["CD"] * 32)
    sock = _socket(listeners=(ListenerInfo("127.0.0.1", 1, "data", True, FP),
                              ListenerInfo("::1", 1, "data", True, FP),
                              ListenerInfo("127.0.0.1", 2, "http", True, FP),
                              ListenerInfo("127.0.0.1", 3, "data", True, other)))
    page = render_html(_stats(sock)).decode("utf-8")
    assert page.count(FP) == 1 and page.count(other) == 1
    assert page.count("TLS cert #1") == 3 and page.count("TLS cert #2") == 1


def test_open_connections_and_own_request():
    """
    Open connections are listed with peer, local port, mode, TLS/ALPN, age
    and bytes; the requester's own connection is marked and not counted;
    more connections than listed says "first N of M".
    """
    rows = (OpenConnection("127.0.0.1:5000", "8001", "data", True, "h2", 75.0, 1500, 2_500_000),
            OpenConnection("127.0.0.1:5001", "8080", "http", False, None, 0.5, 10, 0))
    sock = _socket(connections=3, open=rows)
    page = render_html(_stats(sock), requester=("127.0.0.1:5001", "8080")).decode("utf-8")
    assert "first 2 of 3" in page
    assert ('<td>127.0.0.1:5000</td><td class="num">8001</td><td>data</td><td>TLS h2</td>'
            '<td class="num">1 min 15 s</td><td class="num">1.5 kB</td>'
            '<td class="num">2.5 MB</td>') in page
    assert '127.0.0.1:5001<span class="me"> (this page)</span>' in page
    assert "not counting this page" in page and '<td class="num">2<span class="limit">' in page


def test_udp_kernel_drops_beside_refused():
    """
    A UDP socket shows the sum of its listeners' kernel drops (red when
    above zero) and says its counts are datagrams; a TCP socket shows none.
    """
    udp = _socket("u", protocol="udp", listeners=(
        ListenerInfo("127.0.0.1", 9, "data", kind="plain", prefilter=True, kernel_drops=4, datagrams=1),
        ListenerInfo("::1", 9, "data", kind="plain", prefilter=True, kernel_drops=3, datagrams=0)))
    assert udp.kernel_drops == 7 and udp.datagram and _socket().kernel_drops is None
    page = render_html(_stats(udp)).decode("utf-8")
    assert '<span class="bad">7</span>' in page and "<small>datagrams</small>" in page


def test_rates_over_the_window():
    """
    Rates are taken against the oldest sample at most 10 s old: per second,
    refusals including kernel drops, bytes of ended and listed connections;
    nothing before the first sample.
    """
    rates = Rates()
    before = _stats(_socket(accepted=0, refused=0, bytes_in=0))
    assert rates.rates(100.0, before) == {}
    rates.sample(80.0, before)  # too old by t=100
    rates.sample(90.0, before)
    now = _stats(_socket(accepted=20, refused=10, bytes_in=1000, bytes_out=0,
                         open=(OpenConnection("p", "1", "data", False, None, 1.0, 1000, 500),)))
    got = rates.rates(100.0, now)["sock0"]
    assert got == {"accepted": 2.0, "refused": 1.0, "bytes_in": 200.0, "bytes_out": 50.0}


def test_closed_figures_buckets_and_bytes():
    """
    Each ended connection lands in one duration bucket (the bound itself
    included, beyond the last bound the overflow); bytes add up, the
    peer's FIN is not counted as a byte received; no traffic (UNIX) adds
    no bytes.
    """
    figures = ClosedFigures()
    figures.closed(0.01, (101, 50), by_peer=True)
    figures.closed(5.0, (10, 20), by_peer=False)
    figures.closed(99999.0, None, by_peer=False)
    assert (figures.bytes_in, figures.bytes_out) == (110, 70)
    durations = figures.durations()
    assert durations.counts[0] == 1 and durations.counts[DURATION_BUCKETS.index(10.0)] == 1
    assert durations.counts[-1] == 1 and sum(durations.counts) == 3
    assert durations.total == 0.01 + 5.0 + 99999.0


def test_human_units():
    """
    Byte counts and durations read as a person writes them.
    """
    assert [human_bytes(n) for n in (0, 999, 1500, 2_500_000)] == ["0 B", "999 B", "1.5 kB", "2.5 MB"]
    assert [human_duration(s) for s in (2.25, 42, 60, 3725, 200_000)] == [
        "2.2 s", "42 s", "1 min", "1 h 2 min", "2 d 7 h"]


def test_json_has_version_pid_and_open_rows():
    """
    C{/status.json} carries the version, pid and uptime and each socket's
    open connections.
    """
    import json

    from twisted_sock.web.render import render_json

    row = OpenConnection("127.0.0.1:1", "2", "data", False, None, 1.23456, 3, 4)
    stats = ServiceStatistics(True, (_socket(open=(row,)),), version="1.2.3", pid=7, started=0.0)
    doc = json.loads(render_json(stats))
    assert (doc["version"], doc["pid"]) == ("1.2.3", 7) and doc["uptime"] > 0
    assert doc["sockets"][0]["open"] == [{"peer": "127.0.0.1:1", "local": "2", "mode": "data", "tls": False,
                                          "alpn": None, "age": 1.235, "bytes_in": 3, "bytes_out": 4}]


def test_sni_certificates_in_the_certificates_table():
    """
    A socket's SNI certificates (C{certificates} beyond the default one)
    are rows of the certificates table too, each once, named by server
    name; the default one stays the listeners'.
    """
    sni = ":".join(["EF"] * 32)
    sock = _socket(listeners=(ListenerInfo("127.0.0.1", 1, "data", True, FP),),
                   certificates=(("*", FP), ("a.example", sni)))
    page = render_html(_stats(sock)).decode("utf-8")
    assert page.count(FP) == 1 and page.count(sni) == 1
    assert "server name a.example" in page
