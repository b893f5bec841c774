"""
C{/metrics} of a running service with a TCP and a UDP socket: read by
C{prometheus_client}'s parsers (text format and OpenMetrics, negotiated by
the C{Accept} header) and checked by C{promtool check metrics}.
"""

from __future__ import annotations

import socket
import subprocess

import pytest
import pytest_twisted
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import threads

import twisted_sock
from tests.conftest import require_tool
from tests.integration.clients import TIMEOUT, curl, echo_once
from tests.integration.conftest import port_of, tcp, until
from twisted_sock import SocketConfig

pytestmark = pytest.mark.integration

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def udp_sends(port: int, count: int, source: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        for _ in range(count):
            s.sendto(b"x", ("127.0.0.1", port))


def fetch(port: int, accept: str | None = None) -> tuple[str, str]:
    """
    C{/metrics} with curl: (content type, body).
    """
    extra = ["-H", f"Accept: {accept}"] if accept else []
    done = curl(f"http://127.0.0.1:{port}/metrics", "-w", "\n%{content_type}", *extra)
    assert done.returncode == 0, done.stderr
    body, _, content_type = done.stdout.rpartition("\n")
    return content_type, body


def promtool(body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("promtool"), "check", "metrics"], input=body,
                          capture_output=True, text=True, timeout=TIMEOUT)


def samples(families) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}


@pytest_twisted.ensureDeferred
async def test_metrics_tcp_and_udp_parsed_negotiated_and_promtool_clean(serve):
    """
    With C{log_connections} off (bytes are counted at close regardless),
    after 3 echoed connections of 5000 bytes and UDP datagrams (4 accepted,
    3 dropped by the kernel prefilter): the text format parses with
    C{build_info}, bytes in and out of at least 15000, a duration histogram
    of 3 connections, the limits as gauges, datagrams accepted (not under
    C{accepted_total}) and kernel drops for the UDP socket, the page's own
    connection under mode C{http}, and C{process_*}/C{python_*} families;
    promtool finds nothing wrong in either socket's families; an
    OpenMetrics C{Accept} gets OpenMetrics (ending C{# EOF}, read by the
    strict OpenMetrics parser; promtool reads only the text format).
    """
    service = serve(
        tcp(name="web", handler="echo", http_ports=[0], max_connections=50, max_connections_per_ip=10,
            idle_timeout=30),
        SocketConfig(name="dgram", protocol="udp", local_ports=[0], interfaces="lo", handler="echo",
                     incoming="specific-ip-any-port", target_ip="127.0.0.1"),
        log_connections=False,
    )
    port = port_of(service, "web")
    http = port_of(service, "web", mode="http")
    udp_port = port_of(service, "dgram")
    payload = b"y" * 5000
    for _ in range(3):
        assert await threads.deferToThread(echo_once, port, payload) == payload
    await threads.deferToThread(udp_sends, udp_port, 3, "127.0.0.2")
    await threads.deferToThread(udp_sends, udp_port, 4, "127.0.0.1")
    await until(lambda: service.sockets["web"].statistics().durations.counts != (0,) * 9
                and sum(service.sockets["web"].statistics().closed.values()) >= 3
                and service.sockets["dgram"].statistics().accepted == 4)

    content_type, text = await threads.deferToThread(fetch, http)
    assert content_type.startswith("text/plain; version=0.0.4")
    got = samples(text_string_to_metric_families(text))
    web, dgram = frozenset({("socket", "web")}), frozenset({("socket", "dgram")})
    assert got[("twisted_sock_build_info", frozenset({("version", twisted_sock.__version__)}))] == 1
    assert got[("twisted_sock_received_bytes_total", web)] >= 15000
    assert got[("twisted_sock_sent_bytes_total", web)] >= 15000
    assert got[("twisted_sock_connection_duration_seconds_count", web)] >= 3
    assert got[("twisted_sock_connection_duration_seconds_bucket", web | {("le", "+Inf")})] >= 3
    assert got[("twisted_sock_max_connections", web)] == 50
    assert got[("twisted_sock_max_connections_per_ip", web)] == 10
    assert got[("twisted_sock_idle_timeout_seconds", web)] == 30
    assert got[("twisted_sock_connections_by_mode", web | {("mode", "http")})] == 1  # this scrape
    assert got[("twisted_sock_datagrams_accepted_total", dgram)] == 4
    assert got[("twisted_sock_kernel_drops_total", dgram)] == 3
    assert ("twisted_sock_accepted_total", dgram) not in got
    assert got[("twisted_sock_accepted_total", web)] >= 4
    names = {name for name, _ in got}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= names
    checked = await threads.deferToThread(promtool, text)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")

    content_type, om = await threads.deferToThread(fetch, http, OPENMETRICS)
    assert content_type.startswith("application/openmetrics-text")
    assert om.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(om)}
    assert families["twisted_sock_build"].type == "info"
    assert families["twisted_sock_connection_duration_seconds"].type == "histogram"
    assert families["twisted_sock_kernel_drops"].type == "counter"
    assert samples(families.values())[("twisted_sock_kernel_drops_total", dgram)] == 3
