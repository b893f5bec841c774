"""
The status page, for a person: a C{twisted.web.template} element over a
statistics snapshot (every value escaped by the template engine).
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from twisted.web.template import Element, Tag, XMLString, flattenString, renderer, tags

from twisted_sock.net.kinds import ListenerKind
from twisted_sock.stats import ServiceStatistics, SocketStatistics

_TEMPLATE = XMLString(files("twisted_sock.web").joinpath("status.xml").read_text("utf-8"))


def human_bytes(count: float) -> str:
    """
    C{1234567} as C{"1.2 MB"}.
    """
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """
    C{3725} as C{"1 h 2 min"}; under a minute in seconds.
    """
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        rest = int(seconds % 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


def _rate(value: float | None, bytes_out: float | None = None) -> Tag | str:
    """
    A rate (per second, over the last 10 s); bytes in and out when
    C{bytes_out} is given.
    """
    if value is None:
        return ""
    text = f"{value:.1f}/s" if bytes_out is None else (
        f"{human_bytes(value)}/s / {human_bytes(bytes_out)}/s")
    return tags.span(text, class_="rate", title="over the last 10 s")


def _count(value: int, bad: str = "bad") -> Tag:
    return tags.span(str(value), class_=bad if value else "zero")


class StatusPage(Element):
    """
    The page: version, uptime and pid; a row per socket with its limits
    beside its figures and rates; the certificates; the open connections.

    @param requester: C{(peer, local port)} of the page's own request: that
        connection is marked and not counted.
    """

    loader = _TEMPLATE

    def __init__(self, stats: ServiceStatistics, refresh: int = 5,
                 rates: dict[str, dict[str, float]] | None = None,
                 requester: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.stats = stats
        self.refresh_seconds = refresh
        self.rates = rates or {}
        self.requester = requester
        self.fingerprints: dict[str, int] = {}
        for sock in stats.sockets:
            for li in sock.listeners:
                if li.fingerprint:
                    self.fingerprints.setdefault(li.fingerprint, len(self.fingerprints) + 1)
            for _, fp in sock.certificates[1:]:  # the SNI tables' (the default one is the listeners')
                self.fingerprints.setdefault(fp, len(self.fingerprints) + 1)

    def _own(self, sock: SocketStatistics) -> int:
        return sum(1 for c in sock.open if (c.peer, c.local) == self.requester)

    @renderer
    def refresh(self, request: Any, tag: Tag) -> Tag:
        return tag(content=str(self.refresh_seconds))

    @renderer
    def version(self, request: Any, tag: Tag) -> Tag:
        return tag(self.stats.version)

    @renderer
    def summary(self, request: Any, tag: Tag) -> Tag:
        stats = self.stats
        master: Any = tags.b("enabled", class_="ok") if stats.incoming_enabled else tags.span(
            "disabled (master switch off)", class_="off")
        return tag("pid ", tags.b(str(stats.pid), id="pid"), " · up ",
                   tags.b(human_duration(stats.uptime), id="uptime"), " · incoming connections ", master,
                   " · refreshes every ", str(self.refresh_seconds), " s · ",
                   tags.a("status.json", href="status.json"), " · ", tags.a("metrics", href="metrics"))

    def _listeners(self, sock: SocketStatistics) -> list[Any]:
        out: list[Any] = []
        for li in sock.listeners:
            where = li.address if li.port is None else (
                f"[{li.address}]:{li.port}" if ":" in li.address else f"{li.address}:{li.port}")
            extra = [li.mode]
            if li.tls:
                extra.append(f"TLS cert #{self.fingerprints[li.fingerprint]}" if li.fingerprint else "TLS")
            if li.starttls:
                extra.append(f"STARTTLS {li.starttls}")
            if li.kind and li.kind not in (ListenerKind.PLAIN, ListenerKind.TLS, ListenerKind.STARTTLS):
                extra.append(li.kind)
            if li.prefilter:
                extra.append("kernel prefilter")
            out.append(tags.div(tags.code(where), " ", tags.small(", ".join(extra))))
        return out or [tags.span("none", class_="none")]

    def _socket_row(self, sock: SocketStatistics) -> Tag:
        rate = self.rates.get(sock.name, {})
        limits = sock.limits
        own = self._own(sock)
        limit_text = []
        if limits.get("max_connections") is not None:
            limit_text.append(f"max {limits['max_connections']}")
        if limits.get("max_connections_per_ip") is not None:
            limit_text.append(f"per IP {limits['max_connections_per_ip']}")
        if limits.get("idle_timeout"):
            limit_text.append(f"idle {human_duration(float(limits['idle_timeout'] or 0))}")
        open_cell: list[Any] = [str(sock.connections - own)]
        if limits.get("max_connections") is not None:
            open_cell.append(f" / {limits['max_connections']}")
        open_cell.append(tags.span(" · ".join(limit_text) or "no limits", class_="limit"))
        if own:
            open_cell.append(tags.span("not counting this page", class_="limit me"))
        reasons = ", ".join(f"{k} {v}" for k, v in sock.refused_by.items() if v)
        ended = ", ".join(f"{k} {v}" for k, v in sock.closed.items() if v)
        drops = sock.kernel_drops
        traffic = tags.td(f"{human_bytes(sock.bytes_in)} / {human_bytes(sock.bytes_out)}",
                          _rate(rate.get("bytes_in"), rate.get("bytes_out", 0.0)), class_="num")
        unit = "datagrams" if sock.datagram else sock.protocol
        return tags.tr(
            tags.td(tags.b(sock.name), tags.br(), tags.small(unit), tags.br(), tags.small(sock.incoming),
                    class_="sockname", title=f"incoming {sock.incoming}"),
            tags.td(*self._listeners(sock), class_="listeners"),
            tags.td(*open_cell, class_="num"),
            tags.td(str(sock.accepted), _rate(rate.get("accepted")), class_="num"),
            tags.td(_count(sock.refused), _rate(rate.get("refused")),
                    tags.span(reasons, class_="limit") if reasons else "", class_="num refused"),
            tags.td(_count(drops) if drops is not None else tags.span("—", class_="none"), class_="num"),
            tags.td(_count(sock.tls_failures, "warn"), class_="num failures"),
            traffic if not sock.datagram else tags.td(tags.span("—", class_="none"), class_="num"),
            tags.td(tags.small(ended or "none")),
            id=f"socket-{sock.name}",
        )

    @renderer
    def sockets(self, request: Any, tag: Tag) -> Tag:
        rows = [self._socket_row(sock) for sock in self.stats.sockets]
        return tag(rows or tags.tr(tags.td("no sockets", colspan="9")))

    @renderer
    def certificates(self, request: Any, tag: Tag) -> Tag | str:
        if not self.fingerprints:
            return ""
        users: dict[str, list[str]] = {}
        for sock in self.stats.sockets:
            for li in sock.listeners:
                if li.fingerprint:
                    users.setdefault(li.fingerprint, []).append(f"{sock.name} {li.address}:{li.port}")
            for name, fp in sock.certificates[1:]:
                users.setdefault(fp, []).append(f"{sock.name} server name {name}")
        rows = [tags.tr(tags.td(f"#{n}"), tags.td(tags.code(fp)), tags.td(", ".join(users[fp])))
                for fp, n in self.fingerprints.items()]
        return tag(tags.h2("Certificates"),
                   tags.table(tags.tr(tags.th("#"), tags.th("SHA-256 fingerprint"), tags.th("listeners")),
                              *rows, id="certificates"))

    @renderer
    def connections(self, request: Any, tag: Tag) -> Tag:
        parts: list[Any] = [tags.h2("Open connections")]
        for sock in self.stats.sockets:
            if not sock.open:
                continue
            listed = len(sock.open)
            shown = f"first {listed} of {sock.connections}" if sock.connections > listed else str(listed)
            rows = []
            for c in sock.open:
                me = (c.peer, c.local) == self.requester
                tls = ("TLS" + (f" {c.alpn}" if c.alpn else "")) if c.tls else ""
                rows.append(tags.tr(
                    tags.td(c.peer, tags.span(" (this page)", class_="me") if me else ""),
                    tags.td(c.local, class_="num"), tags.td(c.mode), tags.td(tls),
                    tags.td(human_duration(c.age), class_="num"),
                    tags.td("" if c.bytes_in is None else human_bytes(c.bytes_in), class_="num"),
                    tags.td("" if c.bytes_out is None else human_bytes(c.bytes_out), class_="num")))
            parts.append(tags.h3(sock.name, " ", tags.small(shown)))
            parts.append(tags.table(
                tags.tr(tags.th("peer"), tags.th("local port", class_="num"), tags.th("mode"),
                        tags.th("TLS / ALPN"), tags.th("age", class_="num"),
                        tags.th("bytes in", class_="num"), tags.th("bytes out", class_="num")),
                *rows, class_="connections"))
        if len(parts) == 1:
            parts.append(tags.p("none", class_="none"))
        return tag(*parts)

    @renderer
    def retired(self, request: Any, tag: Tag) -> Tag | str:
        if not self.stats.retired:
            return ""
        rows = [tags.tr(tags.td(s.name), tags.td(str(s.connections), class_="num"))
                for s in self.stats.retired]
        return tag(tags.h2("Removed sockets still draining"),
                   tags.table(tags.tr(tags.th("socket"), tags.th("connections", class_="num")), *rows))


def render_page(page: StatusPage) -> bytes:
    """
    Flatten C{page} now (it waits on nothing).
    """
    out: list[bytes] = []
    failures: list[Any] = []
    flattenString(None, page).addCallbacks(out.append, failures.append)
    if failures:
        failures[0].raiseException()
    return b"<!DOCTYPE html>\n" + out[0]
