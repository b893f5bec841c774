"""
Which configuration changes a running service takes (a reload,
C{reconfigure}) and which need a restart: plain functions over
configurations, no sockets.
"""

from __future__ import annotations

import dataclasses

import pytest

from twisted_sock import ConfigError, SocketConfig, TLSConfig
from twisted_sock.service.planner import changed_keys, check_runtime_change
from twisted_sock.testing import TestPKI, make_pki


def config(pki: TestPKI | None = None, **changes) -> SocketConfig:
    base = SocketConfig(name="s", local_ports="8001,8002", incoming="any-ip-any-port")
    if pki is not None:
        base = base.replace(tls=TLSConfig(certificate=pki.server_certificate, private_key=pki.server_key,
                                          ports=[8001]))
    return base.replace(**changes) if changes else base


@pytest.mark.parametrize("changes", [
    {"incoming": "specific-ip-any-port", "target_ip": "127.0.0.2"},
    {"local_ports": "8001,8003"},
    {"idle_timeout": 5},
    {"max_connections": 3, "reconnect": "same-ip"},
])
def test_runtime_keys_are_taken(changes):
    check_runtime_change(config(), config(**changes))


@pytest.mark.parametrize("changes, key", [
    ({"handler": "discard"}, "handler"),
    ({"backlog": 10}, "backlog"),
    ({"http": "static:/tmp"}, "http"),
])
def test_other_keys_need_a_restart(changes, key):
    with pytest.raises(ConfigError) as caught:
        check_runtime_change(config(), config(**changes))
    assert caught.value.key == key
    assert str(caught.value).endswith("cannot be changed at run time (restart the service)")


def test_tls_options_and_material_are_taken(pki, tmp_path):
    """
    Other TLS options, and another certificate in the same or other files.
    """
    old = config(pki)
    renewed = make_pki(str(tmp_path / "renewed"))
    for tls in (dataclasses.replace(old.tls, alpn=["h2"], min_version="TLSv1.3", handshake_timeout=3),
                dataclasses.replace(old.tls, certificate=renewed.server_certificate,
                                    private_key=renewed.server_key)):
        new = old.replace(tls=tls)
        assert changed_keys(old, new) == ["tls"]
        check_runtime_change(old, new)


def test_same_files_same_certificate_is_no_change(pki):
    old = config(pki)
    assert changed_keys(old, old.replace(tls=dataclasses.replace(old.tls))) == []


@pytest.mark.parametrize("change, key, problem", [
    (lambda tls: None, "tls", "cannot be added or removed at run time"),
    (lambda tls: dataclasses.replace(tls, ports=[8002]), "tls.ports", "cannot be changed at run time"),
    (lambda tls: dataclasses.replace(tls, starttls="command"), "tls.starttls",
     "cannot be changed at run time"),
])
def test_tls_listener_keys_need_a_restart(pki, change, key, problem):
    old = config(pki)
    with pytest.raises(ConfigError) as caught:
        check_runtime_change(old, old.replace(tls=change(old.tls)))
    assert caught.value.key == key and problem in str(caught.value)


def test_adding_tls_needs_a_restart(pki):
    with pytest.raises(ConfigError) as caught:
        check_runtime_change(config(), config(pki))
    assert caught.value.key == "tls"
