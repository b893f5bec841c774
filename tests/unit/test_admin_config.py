"""
Tests for C{[sock] admin_socket} values: an abstract (C{@name}) admin
socket is refused with one line, and the documentation says so.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from twisted_sock import ConfigError, ServiceConfig, cli
from twisted_sock.config.admin import ADMIN_ABSTRACT_REFUSED

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_abstract_admin_socket_is_refused():
    """
    C{admin_socket = "@name"} is a L{ConfigError} naming the key, the value
    and why (no file mode, so no guard).
    """
    with pytest.raises(ConfigError) as caught:
        ServiceConfig((), admin_socket="@admin")
    assert str(caught.value) == f"sock.admin_socket = '@admin': {ADMIN_ABSTRACT_REFUSED}"
    assert "any local user" in ADMIN_ABSTRACT_REFUSED


def test_check_prints_one_line(tmp_path, capsys):
    """
    C{twisted-sock check} on such a file: exit status 2 and exactly one
    line on standard error, no traceback.
    """
    path = tmp_path / "sock.toml"
    path.write_text('[sock]\nadmin_socket = "@admin"\n[[socket]]\nlocal_ports = 0\n')
    assert cli.main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"twisted-sock: {path}: sock.admin_socket = '@admin': {ADMIN_ABSTRACT_REFUSED}"]


def test_docs_say_it_is_refused():
    """
    docs/operations.rst shows the refusal line and no longer says an
    abstract admin socket is accepted.
    """
    text = " ".join((DOCS / "operations.rst").read_text().split())
    assert f"sock.admin_socket = '@admin': {ADMIN_ABSTRACT_REFUSED}" in text
    assert "(the abstract namespace) is accepted" not in text
