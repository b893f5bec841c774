"""
The status page in a real browser: headless Chromium driven by Selenium
loads the page of a service with ten sockets, open connections, refusals
and UDP kernel drops, and checks what a person looks for.

Set C{TWISTED_SOCK_SCREENSHOT=docs/_static/status-page.png} to refresh the
screenshot in the documentation.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import tempfile
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import threads

import twisted_sock
from tests.conftest import require_tool
from tests.integration.clients import TIMEOUT, tls_connect, tls_context
from tests.integration.conftest import port_of, tcp, until
from twisted_sock import SocketConfig, TLSConfig
from twisted_sock.testing import make_pki

pytestmark = pytest.mark.integration

WIDTH = 1280


def browse(url: str, screenshot: str) -> dict[str, Any]:
    """
    Load C{url} in headless Chromium at 1280x900 and read what a person
    would: texts, colours, the page width; save a screenshot.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    profile = tempfile.mkdtemp(prefix="twisted-sock-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = require_tool("chromium")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={WIDTH},900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(require_tool("chromedriver")), options=options)
    try:
        driver.set_page_load_timeout(TIMEOUT * 3)
        driver.get(url)
        found: dict[str, Any] = {
            "title": driver.title,
            "h1": driver.find_element(By.TAG_NAME, "h1").text,
            "pid": driver.find_element(By.ID, "pid").text,
            "uptime": driver.find_element(By.ID, "uptime").text,
            "web": driver.find_element(By.ID, "socket-web").text,
            "dgram": driver.find_element(By.ID, "socket-dgram").text,
            "certificates": driver.find_element(By.ID, "certificates").text,
            "secure": driver.find_element(By.ID, "socket-secure").text,
            "rows": [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                     for tr in driver.find_elements(By.CSS_SELECTOR, "table.connections tr")
                     if tr.find_elements(By.TAG_NAME, "td")],
            "scroll": driver.execute_script(
                "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"),
        }
        colour = "return getComputedStyle(arguments[0]).color"
        found["refused_colour"] = driver.execute_script(
            colour, driver.find_element(By.CSS_SELECTOR, "#socket-guarded td.refused span"))
        found["accepted_colour"] = driver.execute_script(
            colour, driver.find_element(By.CSS_SELECTOR, "#socket-guarded td:nth-child(4)"))
        found["drops_colour"] = driver.execute_script(
            colour, driver.find_element(By.CSS_SELECTOR, "#socket-dgram td:nth-child(6) span"))
        driver.set_window_size(WIDTH, 1500)  # the open connections too
        driver.save_screenshot(screenshot)
        return found
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def tls_echo(port: int, ca: str) -> ssl.SSLSocket:
    """
    A verified TLS connection offering ALPN C{echo}, left open.
    """
    s = tls_connect(port, tls_context(ca, ["echo"]))
    s.sendall(b"ping")
    assert s.recv(4) == b"ping"
    return s


@pytest_twisted.ensureDeferred
async def test_status_page_in_chromium(serve, tmp_path):
    """
    At 1280 px, without horizontal scrolling, the page shows the version,
    the pid and the uptime; the limits of a socket beside its figures; the
    open connections with peer, local port and mode (this page's own
    connection marked and not counted), a TLS one with its ALPN; the
    certificate's fingerprint once; refusals and UDP kernel drops in a
    colour apart from the plain figures.
    """
    require_tool("chromium")
    require_tool("chromedriver")
    configs = [tcp(name="web", handler="echo", http_ports=[0], max_connections=50, max_connections_per_ip=10,
                   idle_timeout=300),
               tcp(name="guarded", handler="echo", incoming="specific-ip-any-port", target_ip="127.0.0.1"),
               SocketConfig(name="dgram", protocol="udp", local_ports=[0], interfaces="lo", handler="echo",
                            incoming="specific-ip-any-port", target_ip="127.0.0.1")]
    pki = make_pki(str(tmp_path))
    configs.append(tcp(name="secure", handler="echo", tls=TLSConfig(
        certificate=pki.server_certificate, private_key=pki.server_key, ports=[0], alpn=["echo"])))
    configs += [tcp(name=f"app{i}", handler="discard", max_connections=100 * i) for i in range(1, 7)]
    service = serve(*configs)
    web, guarded, dgram = port_of(service, "web"), port_of(service, "guarded"), port_of(service, "dgram")
    held = [socket.create_connection(("127.0.0.1", web), timeout=TIMEOUT) for _ in range(5)]
    fingerprint = service.sockets["secure"].statistics().listeners[0].fingerprint
    try:
        held.append(await threads.deferToThread(tls_echo, port_of(service, "secure"), pki.ca_certificate))
        ports = {str(s.getsockname()[1]) for s in held}
        for s in held[:5]:
            s.sendall(b"hello")
        for host in ("127.0.0.2", "127.0.0.3"):
            refused = socket.socket()
            refused.bind((host, 0))
            try:
                refused.connect(("127.0.0.1", guarded))
            except OSError:
                pass
            refused.close()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.2", 0))
            u.sendto(b"dropped", ("127.0.0.1", dgram))
        await until(lambda: service.sockets["guarded"].statistics().refused == 2
                    and service.sockets["web"].statistics().connections == 5)
        shot = os.environ.get("TWISTED_SOCK_SCREENSHOT") or str(tmp_path / "status-page.png")
        url = f"http://127.0.0.1:{port_of(service, 'web', mode='http')}/"
        found = await threads.deferToThread(browse, url, shot)
    finally:
        for s in held:
            s.close()
    assert twisted_sock.__version__ in found["h1"]
    assert found["pid"] == str(os.getpid()) and found["uptime"]
    # The page's own connection is not counted. Chromium may open a spare
    # connection of its own beside the page's (a backup connect under
    # load): that one is an open http connection like any other.
    http_port = str(port_of(service, "web", mode="http"))
    spare = sum(row[1] == http_port and "(this page)" not in row[0] for row in found["rows"])
    assert f"{5 + spare} / 50" in found["web"], (found["web"], found["rows"])
    assert "max 50 · per IP 10 · idle 5 min" in found["web"], found["web"]
    peers = [row for row in found["rows"] if row[0].split(":")[-1] in ports]
    assert len(peers) == 6, found["rows"]
    assert sum(row[1] == str(web) and row[2] == "data" and row[3] == "" for row in peers) == 5
    assert [row[3] for row in peers if row[1] == str(port_of(service, "secure"))] == ["TLS echo"]
    assert found["certificates"].count(fingerprint) == 1 and "secure 127.0.0.1" in found["certificates"]
    assert "TLS cert #1" in found["secure"] and fingerprint not in found["secure"]
    assert [row for row in found["rows"] if "(this page)" in row[0]]
    assert found["refused_colour"] == "rgb(176, 0, 32)" != found["accepted_colour"]
    assert found["drops_colour"] == "rgb(176, 0, 32)"
    scroll_width, client_width = found["scroll"]
    assert scroll_width <= client_width <= WIDTH
    assert os.path.getsize(shot) > 10_000
