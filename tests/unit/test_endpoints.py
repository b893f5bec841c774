"""
Tests for Twisted endpoint strings as listeners (L{twisted_sock.config.endpoints}):
every supported form and every error of C{listen} / C{--listen}, the
socket rules (unix path, ssl certificate, protocols), the TOML key, the
flags, and the listener plan they make (duplicates refused).
"""

from __future__ import annotations

import os
import textwrap

import pytest

from twisted_sock.config.endpoints import Endpoint, flag_protocol, parse_endpoint
from twisted_sock.config.flags import config_from_flags
from twisted_sock.config.loader import load_config
from twisted_sock.config.model import SocketConfig
from twisted_sock.errors import ConfigError
from twisted_sock.net.interfaces import ListenerSpec, plan_listeners
from twisted_sock.testing import make_pki

TABLE = {"lo": ("127.0.0.1",)}
CWD = os.getcwd()


@pytest.mark.parametrize("text, expected", [
    ("tcp:8080", Endpoint("tcp:8080", "tcp", port=8080)),
    ("tcp:0:interface=127.0.0.1", Endpoint("tcp:0:interface=127.0.0.1", "tcp", interface="127.0.0.1")),
    ("tcp:port=8080", Endpoint("tcp:port=8080", "tcp", 8080)),
    ("unix:address=/run/x.sock", Endpoint("unix:address=/run/x.sock", "unix", path="/run/x.sock")),
    ("tcp:8080:interface=\\:\\:1", Endpoint("tcp:8080:interface=\\:\\:1", "tcp", 8080, "::1")),
    ("unix:/run/x.sock", Endpoint("unix:/run/x.sock", "unix", path="/run/x.sock")),
    ("unix:/run/x.sock:mode=660:lockfile=0",
     Endpoint("unix:/run/x.sock:mode=660:lockfile=0", "unix", path="/run/x.sock", mode=0o660)),
    ("unix:@abstract", Endpoint("unix:@abstract", "unix", path="@abstract")),
    ("unix:rel.sock", Endpoint("unix:rel.sock", "unix", path=os.path.join(CWD, "rel.sock"))),
    ("ssl:8443:privateKey=k.pem:certKey=c.pem:interface=127.0.0.1",
     Endpoint("ssl:8443:privateKey=k.pem:certKey=c.pem:interface=127.0.0.1", "ssl", 8443, "127.0.0.1",
              certificate=os.path.join(CWD, "c.pem"), private_key=os.path.join(CWD, "k.pem"))),
    ("ssl:443", Endpoint("ssl:443", "ssl", 443, certificate=os.path.join(CWD, "server.pem"),
                         private_key=os.path.join(CWD, "server.pem"))),
])
def test_supported_forms(text, expected):
    """
    Each supported form is read the way Twisted reads it (its defaults,
    escapes and keyword names) into an L{Endpoint}.
    """
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize("text, problem", [
    ("tor:80", "the incoming decision cannot apply to endpoint type 'tor'"),
    ("onion:80", "cannot apply to endpoint type 'onion'"),
    ("le:/certs:tcp:443", "cannot apply to endpoint type 'le'"),
    ("8080", "cannot apply to endpoint type '8080'"),
    ("TCP:80", "cannot apply to endpoint type 'TCP'"),
    ("tcp:abc", "not a number: 'abc'"),
    ("tcp:80:interface=::1", "'interface' given twice (a ':' inside a value is written '\\:'"),
    ("tcp:70000", "70000"),
    ("tcp:80:foo=1", "unknown parameter 'foo'"),
    ("tcp:80:backlog=5", "backlog is set per socket"),
    ("tcp:80:interface=eth0", "interface must be an IP address"),
    ("unix:/tmp/x:mode=999", "not a number"),
    ("unix:/tmp/x:bogus=1", "unknown parameter 'bogus'"),
    ("ssl:443:sslmethod=TLSv1_METHOD", "unknown parameter 'sslmethod'"),
    ("ssl", "ssl: needs one port"),
    ("", "must be a Twisted endpoint string"),
    (42, "must be a Twisted endpoint string"),
])
def test_errors(text, problem):
    """
    A string Twisted cannot parse, or whose type the decision cannot apply
    to, is one line naming the entry.
    """
    with pytest.raises(ConfigError) as e:
        parse_endpoint(text)
    assert problem in str(e.value)
    assert "\n" not in str(e.value)


def test_tcp_listener_plan():
    """
    C{tcp:} entries are data listeners of the socket: on their interface,
    or on all addresses like C{interfaces = "*"}, beside the port lists.
    """
    config = SocketConfig(local_ports=[9000], interfaces="lo",
                          listen=["tcp:0:interface=127.0.0.1", "tcp:9001"])
    assert plan_listeners(config, TABLE) == [
        ListenerSpec("sock0", "127.0.0.1", 9000, "data"),
        ListenerSpec("sock0", "127.0.0.1", 0, "data"),
        ListenerSpec("sock0", "::", 9001, "data"),
    ]
    assert plan_listeners(config, TABLE, dual_stack=False)[-1].address == "0.0.0.0"


def test_listen_only_socket():
    """
    A TCP socket may have only C{listen} entries (no port lists).
    """
    assert SocketConfig(listen="tcp:0").listen[0].port == 0
    with pytest.raises(ConfigError, match="needs local_ports, http_ports or listen"):
        SocketConfig()


@pytest.mark.parametrize("listen, other", [
    ("tcp:9000", "data listener 127.0.0.1:9000"),
    ("tcp:9000:interface=127.0.0.1", "data listener 127.0.0.1:9000"),
    ("tcp:8080:interface=127.0.0.1", "http listener 127.0.0.1:8080"),
])
def test_duplicate_of_port_list(listen, other):
    """
    A C{listen} entry that would take a port-list listener's address and
    port is one line (it could never bind).
    """
    config = SocketConfig(local_ports=[9000], http_ports=[8080], interfaces="lo", listen=[listen])
    with pytest.raises(ConfigError) as e:
        plan_listeners(config, TABLE)
    assert f"duplicates the {other}" in str(e.value)


def test_duplicate_entries():
    """
    Two entries with the same address and port are refused, written alike
    or not.
    """
    with pytest.raises(ConfigError, match="the same endpoint twice"):
        SocketConfig(listen=["tcp:9000", "tcp:9000"])
    with pytest.raises(ConfigError, match="duplicates the data listener"):
        plan_listeners(SocketConfig(listen=["tcp:9000", "tcp:9000:interface=127.0.0.1"]), TABLE)


def test_unix_endpoint_is_the_unix_socket_path(tmp_path):
    """
    On a unix socket one C{unix:} entry is its path (and mode); on a TCP
    socket, or with a path key, or twice, it is one line.
    """
    path = str(tmp_path / "x.sock")
    config = SocketConfig(protocol="unix", listen=[f"unix:{path}:mode=660"])
    assert (config.path, config.mode) == (path, 0o660)
    assert plan_listeners(config, TABLE)[0].address == path
    assert SocketConfig(protocol="unix", listen=f"unix:{path}").mode == 0o600
    for bad in (dict(listen=[f"unix:{path}"]),
                dict(protocol="unix", path=path, listen=[f"unix:{path}"]),
                dict(protocol="unix", listen=[f"unix:{path}", f"unix:{path}2"]),
                dict(protocol="unix", listen=["tcp:1"]),
                dict(protocol="udp", local_ports=1, listen=["tcp:1"])):
        with pytest.raises(ConfigError):
            SocketConfig(**bad)


def test_ssl_endpoint(tmp_path):
    """
    An C{ssl:} entry is a TLS data listener; on a socket without TLS
    settings its files make them; a different certificate from the
    socket's is one line, as are missing files.
    """
    pki = make_pki(str(tmp_path))
    text = f"ssl:0:privateKey={pki.server_key}:certKey={pki.server_certificate}:interface=127.0.0.1"
    config = SocketConfig(listen=[text])
    assert config.tls.certificate == pki.server_certificate
    assert plan_listeners(config, TABLE) == [ListenerSpec("sock0", "127.0.0.1", 0, "data", "tls")]
    same = {"certificate": pki.server_certificate, "private_key": pki.server_key, "ports": [1]}
    assert SocketConfig(local_ports=[1], tls=same, listen=[text]).tls.ports == (1,)
    other = dict(same, certificate=pki.client_certificate, private_key=pki.client_key)
    with pytest.raises(ConfigError, match="differ from the socket's"):
        SocketConfig(local_ports=[1], tls=other, listen=[text])
    with pytest.raises(ConfigError, match="no such file"):
        SocketConfig(listen=[f"ssl:0:privateKey={tmp_path}/none.pem"])


def test_toml_listen_key(tmp_path):
    """
    C{listen} in a C{[[socket]]} table: a list of strings, relative paths
    from the file's directory; errors name the file and socket.
    """
    (tmp_path / "sock.toml").write_text(textwrap.dedent("""
        [[socket]]
        name = "web"
        listen = ["tcp:0:interface=127.0.0.1"]

        [[socket]]
        name = "local"
        protocol = "unix"
        listen = ["unix:local.sock:mode=660"]
    """))
    web, local = load_config(str(tmp_path / "sock.toml")).sockets
    assert web.listen[0].interface == "127.0.0.1"
    assert local.path == str(tmp_path / "local.sock")
    (tmp_path / "bad.toml").write_text('[[socket]]\nname = "w"\nlisten = ["tor:80"]\n')
    with pytest.raises(ConfigError) as e:
        load_config(str(tmp_path / "bad.toml"))
    assert str(e.value).startswith(f"{tmp_path / 'bad.toml'}: socket 'w': listen = 'tor:80': ")


def test_flags():
    """
    C{--listen} (repeatable) builds the flags' socket: TCP, or a unix
    socket when every entry is C{unix:}; with C{--config} or bad strings it
    is one line naming C{--listen}.
    """
    config = config_from_flags({"listen": ("tcp:0:interface=127.0.0.1", "tcp:0:interface=\\:\\:1"),
                                "incoming": "specific-ip-any-port", "target-ip": "127.0.0.1"})
    sock = config.sockets[0]
    assert (sock.protocol, len(sock.listen)) == ("tcp", 2)
    assert config_from_flags({"listen": ("unix:@x",)}).sockets[0].path == "@x"
    assert flag_protocol(["unix:@x", "tcp:1"]) == "tcp"
    with pytest.raises(ConfigError, match="--config cannot be mixed with --listen"):
        config_from_flags({"config": "x.toml", "listen": ("tcp:1",)})
    with pytest.raises(ConfigError) as e:
        config_from_flags({"listen": ("tcp:nope",)})
    assert str(e.value) == "--listen = 'tcp:nope': not a number: 'nope'"
    with pytest.raises(ConfigError, match="a unix: endpoint needs a unix socket"):
        config_from_flags({"listen": ("unix:@x",), "tcp": "1"})


def test_documented_example():
    """
    C{docs/examples/endpoints.toml} loads and plans its endpoint listeners
    beside the port lists (the docs show what C{check} prints for it).
    """
    example = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "examples", "endpoints.toml")
    web, local = load_config(example).sockets
    assert [str(s) for s in plan_listeners(web, TABLE)] == \
        ["127.0.0.1:18701", "127.0.0.1:18702", "[::1]:18703"]
    assert local.path.endswith("endpoints-demo.sock") and local.mode == 0o660
