"""
Pure renderers of a L{ServiceStatistics} snapshot: JSON, Prometheus text
format and a small HTML page. No I/O.
"""

from __future__ import annotations

import html
import json

from twisted_sock.stats import ServiceStatistics


def render_json(stats: ServiceStatistics) -> bytes:
    return json.dumps(stats.as_dict(), indent=2).encode("utf-8") + b"\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_metrics(stats: ServiceStatistics) -> bytes:
    """
    The Prometheus text exposition format (version 0.0.4).
    """
    lines = [
        "# HELP twisted_sock_incoming_enabled The master switch (1 = incoming allowed).",
        "# TYPE twisted_sock_incoming_enabled gauge",
        f"twisted_sock_incoming_enabled {int(stats.incoming_enabled)}",
    ]
    families = [
        ("connections", "gauge", "Connections open now.", lambda s: s.connections),
        ("listeners", "gauge", "Listeners open now.", lambda s: len(s.listeners)),
        ("accepted_total", "counter", "Connections accepted.", lambda s: s.accepted),
        ("refused_total", "counter", "Connections or datagrams refused.", lambda s: s.refused),
        ("tls_failures_total", "counter", "TLS handshakes that failed.", lambda s: s.tls_failures),
    ]
    for name, kind, help_, get in families:
        lines.append(f"# HELP twisted_sock_{name} {help_}")
        lines.append(f"# TYPE twisted_sock_{name} {kind}")
        for sock in stats.sockets:
            lines.append(f'twisted_sock_{name}{{socket="{_label(sock.name)}"}} {get(sock)}')
    lines.append("# HELP twisted_sock_refused_by_total Refusals by decision reason.")
    lines.append("# TYPE twisted_sock_refused_by_total counter")
    for sock in stats.sockets:
        for reason, count in sock.refused_by.items():
            lines.append(
                f'twisted_sock_refused_by_total{{socket="{_label(sock.name)}",'
                f'reason="{_label(reason)}"}} {count}'
            )
    lines.append("# HELP twisted_sock_closed_total Ended connections by ShutdownReason.")
    lines.append("# TYPE twisted_sock_closed_total counter")
    for sock in stats.sockets:
        for reason, count in sock.closed.items():
            lines.append(
                f'twisted_sock_closed_total{{socket="{_label(sock.name)}",'
                f'reason="{_label(reason)}"}} {count}'
            )
    lines.append("# HELP twisted_sock_retired_connections Connections still open on removed or "
                 "renamed sockets.")
    lines.append("# TYPE twisted_sock_retired_connections gauge")
    retired: dict[str, int] = {}
    for sock in stats.retired:
        retired[sock.name] = retired.get(sock.name, 0) + sock.connections
    for name, count in retired.items():
        lines.append(f'twisted_sock_retired_connections{{socket="{_label(name)}"}} {count}')
    return ("\n".join(lines) + "\n").encode("utf-8")


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{refresh}">
<title>twisted-sock status</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }}
th {{ background: #f3f3f3; }}
.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.off {{ color: #a00; font-weight: bold; }}
</style></head><body>
<h1>twisted-sock</h1>
<p>Incoming connections: {master}. This page refreshes every {refresh} s;
machine-readable: <a href="status.json">status.json</a>,
<a href="metrics">metrics</a>.</p>
{sockets}
</body></html>
"""


def render_html(stats: ServiceStatistics, refresh: int = 5) -> bytes:
    master = "enabled" if stats.incoming_enabled else '<span class="off">disabled (master switch off)</span>'
    parts = []
    for sock in stats.sockets:
        e = html.escape
        listeners = "".join(
            f"<tr><td>{e(li.address)}</td><td class=num>{'' if li.port is None else li.port}</td>"
            f"<td>{e(li.mode)}</td>"
            f"<td>{'yes' if li.tls else ('STARTTLS' if li.starttls else 'no')}</td>"
            f"<td><code>{e(li.fingerprint or '')}</code></td></tr>"
            for li in sock.listeners
        ) or "<tr><td colspan=5>none</td></tr>"
        closed = ", ".join(f"{e(k)} {v}" for k, v in sock.closed.items() if v) or "none"
        refused = ", ".join(f"{e(k)} {v}" for k, v in sock.refused_by.items() if v) or "none"
        parts.append(
            f"<h2>Socket {e(sock.name)} <small>({e(sock.protocol)}, incoming "
            f"{e(sock.incoming)})</small></h2>\n"
            "<table><tr><th>connections</th><th>accepted</th><th>refused</th>"
            "<th>TLS failures</th></tr>"
            f"<tr><td class=num>{sock.connections}</td><td class=num>{sock.accepted}</td>"
            f"<td class=num>{sock.refused}</td><td class=num>{sock.tls_failures}</td></tr></table>\n"
            "<table><tr><th>address</th><th>port</th><th>mode</th><th>TLS</th>"
            "<th>certificate SHA-256</th></tr>"
            f"{listeners}</table>\n"
            f"<p>Closed by reason: {closed}.<br>Refused by reason: {refused}.</p>"
        )
    if stats.retired:
        rows = "".join(f"<tr><td>{html.escape(sock.name)}</td><td class=num>{sock.connections}</td></tr>"
                       for sock in stats.retired)
        parts.append("<h2>Removed sockets still draining</h2>\n"
                     f"<table><tr><th>socket</th><th>connections</th></tr>{rows}</table>")
    return _PAGE.format(refresh=refresh, master=master, sockets="\n".join(parts)).encode("utf-8")
