"""
Tests for the configuration models (L{SocketConfig}, L{ServiceConfig}), the
TOML loader (L{load_config}) and the command-line flags
(L{config_from_flags}).
"""

from __future__ import annotations

import dataclasses
import os
import textwrap
from ipaddress import IPv4Address, IPv4Network, IPv6Address

import pytest

from twisted_sock.config.flags import config_from_flags, embedded_default
from twisted_sock.config.loader import load_config
from twisted_sock.config.model import DEFAULT_BACKLOG, ServiceConfig, SocketConfig
from twisted_sock.errors import ConfigError
from twisted_sock.policy.incoming import IncomingMode
from twisted_sock.policy.reconnect import ReconnectMode

ANY = IncomingMode.ANY_IP_ANY_PORT


def _one_line(error: ConfigError) -> str:
    text = str(error)
    assert "\n" not in text
    return text


# --------------------------------------------------------------------------
# SocketConfig: defaults and normalisation

def test_defaults():
    """
    A tcp socket given only its ports gets the SPEC defaults: name sock0,
    incoming none, interfaces "*", handler echo, http status, no limits,
    no idle timeout.
    """
    config = SocketConfig(local_ports=[8001])
    assert dataclasses.asdict(config) == {
        "name": "sock0",
        "protocol": "tcp",
        "incoming": IncomingMode.NONE,
        "target_ip": (),
        "target_port": None,
        "local_ports": (8001,),
        "http_ports": (),
        "interfaces": ("*",),
        "handler": "echo",
        "http": "status",
        "max_connections": None,
        "max_connections_per_ip": None,
        "idle_timeout": 0.0,
        "http_header_timeout": 10.0,
        "http_idle_timeout": 60.0,
        "backlog": DEFAULT_BACKLOG,
        "tls": None,
        "multicast_groups": (),
        "broadcast": False,
        "prefilter": True,
        "multicast_ttl": None,
        "multicast_loop": None,
        "multicast_interface": None,
        "udp_sessions": False,
        "path": None,
        "mode": 0o600,
        "owner": None,
        "group": None,
        "allowed_uids": None,
        "allowed_gids": None,
        "datagram": False,
        "serve": "data",
        "reconnect": ReconnectMode.NONE,
        "proxy_protocol": False,
        "trusted_proxies": (),
        "listen": (),
        "accept": None,
        # Where and how it listens (SPEC section 7): the system's settings.
        "freebind": False,
        "bind_to_device": False,
        "follow_interfaces": False,
        "reuse_port": False,
        "nodelay": False,
        "keepalive": False,
        "keepalive_idle": None,
        "keepalive_interval": None,
        "keepalive_count": None,
        "user_timeout": None,
        "send_buffer": None,
        "receive_buffer": None,
        "tos": None,
    }
    assert DEFAULT_BACKLOG == 1024


def test_values_are_normalised():
    """
    Every field accepts what a user may write and holds the normalised
    value afterwards.
    """
    config = SocketConfig(
        name="data",
        protocol=" TCP ",
        incoming="SPECIFIC_IP_PORT",
        target_ip="10.0.0.0/8, ::ffff:192.168.1.40, 0000::0001",
        target_port="4000",
        local_ports="1001,5000-5002",
        http_ports=8080,
        interfaces="lo, eth0",
        handler=" discard ",
        max_connections="10",
        max_connections_per_ip=2,
        idle_timeout="1.5",
        backlog="64",
    )
    assert (
        config.protocol, config.incoming, config.target_ip, config.target_port, config.local_ports,
        config.http_ports, config.interfaces, config.handler, config.max_connections,
        config.max_connections_per_ip, config.idle_timeout, config.backlog,
    ) == (
        "tcp", IncomingMode.SPECIFIC_IP_PORT,
        (IPv4Network("10.0.0.0/8"), IPv4Address("192.168.1.40"), IPv6Address("::1")), 4000,
        (1001, 5000, 5001, 5002), (8080,), ("lo", "eth0"), "discard", 10, 2, 1.5, 64,
    )
    assert config.targets == config.target_ip


@pytest.mark.parametrize(
    ("local", "http", "data"),
    [
        ([8001, 8080], [8080], (8001,)),
        ([8080], [8080], ()),
        ([8001, 8002], [], (8001, 8002)),
        ([], [8080], ()),
        ([8001, 0], [0, 8080], (8001, 0)),
    ],
)
def test_data_ports(local, http, data):
    """
    A port in both lists is HTTP: it is left out of the data ports (port 0,
    "any free port", is never shared).
    """
    assert SocketConfig(local_ports=local, http_ports=http).data_ports == data


# --------------------------------------------------------------------------
# SocketConfig: bad values

BAD_FIELDS = [
    ("protocol", "sctp", "unknown protocol 'sctp' (choose tcp, udp or unix)"),
    ("protocol", 5, "unknown protocol 5 (choose tcp, udp or unix)"),
    ("incoming", "sometimes", "unknown incoming mode 'sometimes'"),
    ("incoming", 7, "unknown incoming mode 7"),
    ("target_ip", "nope", "'nope' is not an IP address or network"),
    ("target_ip", "10.0.0.1/8", "has host bits set (did you mean 10.0.0.0/8?)"),
    ("target_ip", 42, "target_ip must be an address, a network, or a list of them"),
    ("target_port", 0, "port 0 is outside 1-65535"),
    ("target_port", 70000, "port 70000 is outside 1-65535"),
    ("target_port", "x", "'x' is not a port number"),
    ("target_port", True, "a port must be a number, not a boolean"),
    ("local_ports", "10,,x", "empty entry in port list"),
    ("local_ports", "70000", "port 70000 is outside 0-65535"),
    ("local_ports", "10-5", "range 10-5 runs backwards"),
    ("local_ports", "0-10", "port 0 is outside 1-65535"),
    ("local_ports", "80,80", "port 80 is listed twice"),
    ("local_ports", True, "a port list must be a string or a list of numbers"),
    ("local_ports", 80.0, "a port list must be a string or a list of numbers"),
    ("http_ports", "http", "'http' is not a port number"),
    ("interfaces", "*,lo", '"*" (all addresses) cannot be mixed with interface names'),
    ("interfaces", "", "empty or non-string entry in interfaces"),
    ("handler", "nosuch", "unknown handler 'nosuch' (built-in: echo, discard, chat; or package.module:attr)"),
    ("handler", "", "handler must be a name or package.module:attr"),
    ("handler", 5, "handler must be a name or package.module:attr"),
    ("handler", "no_such_module_xyz:factory", "cannot import module 'no_such_module_xyz'"),
    ("handler", "os:no_such_attr", "module 'os' has no attribute 'no_such_attr'"),
    ("handler", ":factory", "':factory' is not of the form package.module:attr"),
    ("http", "nosuch", "unknown http resource 'nosuch' (status, static:DIR or package.module:attr)"),
    ("http", "static:/no/such/dir", "directory '/no/such/dir' does not exist"),
    ("http", "static:", "static: needs a directory"),
    ("http", "no_such_module_xyz:resource", "cannot import module 'no_such_module_xyz'"),
    ("http", "", "http must be status, static:DIR or package.module:attr"),
    ("max_connections", 0, "max_connections must be 1 or more"),
    ("max_connections", "many", "max_connections must be a whole number"),
    ("max_connections_per_ip", -1, "max_connections_per_ip must be 1 or more"),
    ("idle_timeout", -1, "idle_timeout must be a finite number, 0 or more"),
    ("idle_timeout", "soon", "'soon' is not a number"),
    ("backlog", 0, "backlog must be 1 or more"),
    ("accept", "yes", "must be callable"),
]


@pytest.mark.parametrize(("key", "value", "problem"), BAD_FIELDS)
def test_bad_field(key, value, problem):
    """
    A bad value of any field raises L{ConfigError} carrying the socket, key
    and value, rendered as one line C{socket 'NAME': KEY = VALUE: PROBLEM}.
    """
    kwargs = {"name": "s1", "local_ports": [8001], key: value}
    with pytest.raises(ConfigError) as info:
        SocketConfig(**kwargs)
    error = info.value
    assert (error.socket, error.key, error.value, error.file) == ("s1", key, value, None)
    text = _one_line(error)
    assert text.startswith(f"socket 's1': {key} = {value!r}: ")
    assert problem in text


@pytest.mark.parametrize("name", ["", "  ", "a b", "tab\tname", 5, None])
def test_bad_name(name):
    """
    A socket name must be one non-empty word; the error names the key and
    the value (there is no socket name to show).
    """
    with pytest.raises(ConfigError) as info:
        SocketConfig(name=name, local_ports=[1])
    assert _one_line(info.value) == f"name = {name!r}: a socket name must be a non-empty word"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"incoming": "specific-ip-any-port"},
            "socket 's1': target_ip: incoming = 'specific-ip-any-port' needs target_ip",
        ),
        (
            {"incoming": "specific-ip-port", "target_port": 4000},
            "socket 's1': target_ip: incoming = 'specific-ip-port' needs target_ip",
        ),
        (
            {"incoming": "specific-ip-port", "target_ip": "10.0.0.1"},
            "socket 's1': target_port: incoming = 'specific-ip-port' needs target_port",
        ),
        (
            {"incoming": "specific-ip-any-port", "target_ip": []},
            "socket 's1': target_ip: incoming = 'specific-ip-any-port' needs target_ip",
        ),
        (
            {"local_ports": None},
            "socket 's1': local_ports: a tcp socket needs local_ports, http_ports or listen",
        ),
        (
            {"local_ports": "", "http_ports": ""},
            "socket 's1': local_ports: a tcp socket needs local_ports, http_ports or listen",
        ),
        (
            {"local_ports": [], "http_ports": []},
            "socket 's1': local_ports: a tcp socket needs local_ports, http_ports or listen",
        ),
    ],
)
def test_cross_field_rules(kwargs, expected):
    """
    The C{specific-*} modes need C{target_ip}, C{specific-ip-port} also
    needs C{target_port}, and a tcp socket needs at least one port.
    """
    kwargs = {"name": "s1", "local_ports": [8001], **kwargs}
    with pytest.raises(ConfigError) as info:
        SocketConfig(**kwargs)
    assert _one_line(info.value) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"http_ports": [8080], "local_ports": []},
        {"incoming": "specific-ip-any-port", "target_ip": "10.0.0.1"},
        {"incoming": "specific-ip-port", "target_ip": "10.0.0.1", "target_port": 1},
        {"incoming": "none", "target_ip": "10.0.0.1"},
        {"incoming": 3},
    ],
)
def test_cross_field_rules_accept(kwargs):
    """
    Complete combinations are accepted (a target with another mode is
    simply unused).
    """
    kwargs = {"local_ports": [8001], **kwargs}
    assert isinstance(SocketConfig(**kwargs), SocketConfig)


def test_handler_reference_that_imports():
    """
    A C{package.module:attr} handler (C{attr} may be dotted) that resolves is
    kept as written.
    """
    for ref in ("twisted.internet.protocol:Factory", "twisted.internet.protocol:Factory.forProtocol"):
        assert SocketConfig(local_ports=[1], handler=ref).handler == ref


def test_handler_module_that_raises_on_import(tmp_path, monkeypatch):
    """
    A handler module that raises while being imported is a configuration
    error naming the module and the exception, not a traceback.
    """
    (tmp_path / "tsock_boom_handler.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as info:
        SocketConfig(name="s1", local_ports=[1], handler="tsock_boom_handler:factory")
    assert _one_line(info.value) == (
        "socket 's1': handler = 'tsock_boom_handler:factory': importing 'tsock_boom_handler' "
        "failed: RuntimeError: boom"
    )


def test_http_static_directory(tmp_path, monkeypatch):
    """
    C{http = "static:DIR"} needs an existing directory and stores it as an
    absolute path.
    """
    (tmp_path / "www").mkdir()
    monkeypatch.chdir(tmp_path)
    config = SocketConfig(http_ports=[8080], http="static:www")
    assert config.http == "static:" + str(tmp_path / "www")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ConfigError, match="directory 'file.txt' does not exist"):
        SocketConfig(http_ports=[8080], http="static:file.txt")


def test_immutable():
    """
    A built SocketConfig cannot be changed in place.
    """
    config = SocketConfig(local_ports=[8001])
    for key, value in (("name", "other"), ("local_ports", (1,)), ("incoming", ANY)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(config, key, value)
    assert (config.name, config.local_ports, config.incoming) == ("sock0", (8001,), IncomingMode.NONE)


def test_replace_validates_again():
    """
    C{replace()} returns a new validated copy and leaves the original alone;
    bad values and unknown keys are refused with a ConfigError.
    """
    config = SocketConfig(name="s1", local_ports=[8001], incoming="specific-ip-any-port",
                          target_ip="10.0.0.1")
    assert config.replace() == config
    changed = config.replace(local_ports="9000-9001", target_ip="::ffff:10.0.0.2")
    assert changed == SocketConfig(name="s1", local_ports=[9000, 9001], incoming="specific-ip-any-port",
                                   target_ip="10.0.0.2")
    assert config.local_ports == (8001,)

    with pytest.raises(ConfigError) as info:
        config.replace(local_ports="x")
    assert _one_line(info.value) == "socket 's1': local_ports = 'x': 'x' is not a port number"

    with pytest.raises(ConfigError) as info:
        config.replace(target_ip=[])
    assert _one_line(info.value) == (
        "socket 's1': target_ip: incoming = 'specific-ip-any-port' needs target_ip"
    )

    with pytest.raises(ConfigError) as info:
        config.replace(colour="red", zone=1)
    assert _one_line(info.value) == "socket 's1': colour: unknown key"


def test_accept_hook_not_compared():
    """
    The C{accept} hook is kept but does not take part in equality.
    """

    def hook(peer, local):
        return True

    config = SocketConfig(local_ports=[1], accept=hook)
    assert config.accept is hook
    assert config == SocketConfig(local_ports=[1])


# --------------------------------------------------------------------------
# ServiceConfig

def test_service_config():
    """
    A ServiceConfig holds its sockets as a tuple and the master switch.
    """
    a = SocketConfig(name="a", local_ports=[1])
    b = SocketConfig(name="b", local_ports=[2])
    service = ServiceConfig([a, b])
    assert service.sockets == (a, b)
    assert service.incoming_enabled is True
    assert service.file is None


def test_service_config_duplicate_names():
    """
    Two sockets with the same name are refused, naming the name.
    """
    a = SocketConfig(name="a", local_ports=[1])
    with pytest.raises(ConfigError) as info:
        ServiceConfig((a, a.replace(local_ports=[2])), file="x.toml")
    assert _one_line(info.value) == "x.toml: socket 'a': name = 'a': socket name used twice"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"incoming_enabled": "yes"}, "sock.incoming_enabled = 'yes': must be true or false"),
        ({"incoming_enabled": 1}, "sock.incoming_enabled = 1: must be true or false"),
    ],
)
def test_service_config_master_switch_must_be_bool(kwargs, expected):
    """
    The master switch must be a real boolean.
    """
    with pytest.raises(ConfigError) as info:
        ServiceConfig((SocketConfig(local_ports=[1]),), **kwargs)
    assert _one_line(info.value) == expected


def test_service_config_refuses_non_socket():
    """
    Only SocketConfig values can be sockets.
    """
    with pytest.raises(ConfigError, match="sockets must be SocketConfig values"):
        ServiceConfig(({"name": "a"},))


# --------------------------------------------------------------------------
# loader

def _write(path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


FULL_EXAMPLE = """\
    [sock]                          # global settings (all optional)
    incoming_enabled = false        # Tibbo sock.inconenabledmaster

    [[socket]]                      # one table per socket
    name = "data"
    protocol = "tcp"
    incoming = "specific-ip-any-port"
    target_ip = "192.168.1.40"      # or a list: ["10.0.0.0/8", "::1"]
    local_ports = "1001,2000,3000"
    http_ports = "80"
    interfaces = "lo"
    handler = "echo"

    [[socket]]
    name = "lab"
    incoming = "specific-ip-port"
    target_ip = ["10.0.0.0/8", "::1"]
    target_port = 4000
    local_ports = [5000, "6000-6002"]
    http_ports = 8081
    interfaces = ["lo"]
    handler = "discard"
    http = "static:www"
    max_connections = 10
    max_connections_per_ip = 2
    idle_timeout = 30
    backlog = 50
"""


def test_load_full_example(tmp_path):
    """
    The SPEC example (tcp only, on lo) loads into exactly the ServiceConfig
    built from the same values in Python; a relative static directory is
    resolved against the file's directory.
    """
    (tmp_path / "www").mkdir()
    path = _write(tmp_path / "sock.toml", FULL_EXAMPLE)
    expected = ServiceConfig(
        (
            SocketConfig(
                name="data", protocol="tcp", incoming=IncomingMode.SPECIFIC_IP_ANY_PORT,
                target_ip="192.168.1.40", local_ports=[1001, 2000, 3000], http_ports=[80],
                interfaces=["lo"], handler="echo",
            ),
            SocketConfig(
                name="lab", incoming=IncomingMode.SPECIFIC_IP_PORT, target_ip=["10.0.0.0/8", "::1"],
                target_port=4000, local_ports=[5000, 6000, 6001, 6002], http_ports=[8081],
                interfaces=["lo"], handler="discard", http="static:" + str(tmp_path / "www"),
                max_connections=10, max_connections_per_ip=2, idle_timeout=30.0, backlog=50,
            ),
        ),
        incoming_enabled=False,
        file=path,
    )
    loaded = load_config(path)
    assert loaded == expected
    assert loaded.sockets[0].target_ip == (IPv4Address("192.168.1.40"),)
    assert loaded.sockets[1].target_ip == (IPv4Network("10.0.0.0/8"), IPv6Address("::1"))
    assert loaded.base_dir == str(tmp_path)


def test_load_accepts_pathlike(tmp_path):
    """
    C{load_config} takes a path object too and records the file as a string.
    """
    path = tmp_path / "sock.toml"
    _write(path, '[[socket]]\nlocal_ports = 1\n')
    loaded = load_config(path)
    assert loaded.file == str(path)
    assert loaded.incoming_enabled is True


def test_default_names_in_file_order(tmp_path):
    """
    Unnamed sockets are called C{sock0}, C{sock1}, ... by their position
    in the file.
    """
    path = _write(
        tmp_path / "sock.toml",
        """\
        [[socket]]
        local_ports = 1001
        [[socket]]
        local_ports = 1002
        [[socket]]
        name = "named"
        local_ports = 1003
        [[socket]]
        local_ports = 1004
        """,
    )
    config = load_config(path)
    assert [(s.name, s.local_ports) for s in config.sockets] == [
        ("sock0", (1001,)), ("sock1", (1002,)), ("named", (1003,)), ("sock3", (1004,)),
    ]


def test_relative_static_dir_resolved_against_file(tmp_path, monkeypatch):
    """
    C{static:DIR} relative paths are relative to the configuration file's
    directory, not to the working directory.
    """
    conf = tmp_path / "conf"
    (conf / "www").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = _write(conf / "sock.toml", '[[socket]]\nhttp_ports = 8080\nhttp = "static:www"\n')
    assert load_config(path).sockets[0].http == "static:" + str(conf / "www")
    relative = os.path.relpath(path, elsewhere)
    assert load_config(relative).sockets[0].http == "static:" + str(conf / "www")


LOADER_ERRORS = [
    (
        '[[socket]]\nname = "a"\nlocal_ports = 1\ncolour = "red"\n',
        "socket 'a': colour: unknown key",
    ),
    ('[[socket]]\nlocal_ports = 1\ncolour = "red"\n', "socket 'sock0': colour: unknown key"),
    ('[sock]\ncolour = "red"\n[[socket]]\nlocal_ports = 1\n', "sock.colour: unknown key"),
    (
        '[[socket]]\nname = "a"\nlocal_ports = 1\n[socket.tls]\ncertificate = "c.pem"\n',
        "socket 'a': tls.private_key: is required",
    ),
    (
        '[[socket]]\nname = "a"\nlocal_ports = 1\nreconnect = "any"\n',
        "socket 'a': reconnect: reconnect needs max_connections (it acts when the socket is full)",
    ),
    (
        '[[socket]]\nname = "a"\nlocal_ports = 1\nproxy_protocol = true\n',
        "socket 'a': trusted_proxies: proxy_protocol needs trusted_proxies (the proxies' addresses)",
    ),
    (
        '[sock]\ndrain_timeout = -5\n[[socket]]\nlocal_ports = 1\n',
        "sock.drain_timeout = -5: drain_timeout must be a finite number, 0 or more",
    ),
    (
        '[[socket]]\nname = "a"\nprotocol = "unix"\nlocal_ports = 1\n',
        "socket 'a': local_ports: does not apply to protocol 'unix'",
    ),
    ('[socket]\nlocal_ports = 1\n', "socket: write [[socket]] (an array of tables), not [socket]"),
    ('[sock]\nincoming_enabled = true\n', "no [[socket]] table: nothing to listen on"),
    ("", "no [[socket]] table: nothing to listen on"),
    ("socket = []\n", "no [[socket]] table: nothing to listen on"),
    (
        '[sock]\nincoming_enabled = "yes"\n[[socket]]\nlocal_ports = 1\n',
        "sock.incoming_enabled = 'yes': must be true or false",
    ),
    ('colour = 1\n', "colour: unknown top-level key (expected [sock] or [[socket]])"),
    ('sock = 1\n[[socket]]\nlocal_ports = 1\n', "sock: must be a table"),
    (
        '[[socket]]\nname = "a"\nlocal_ports = "10,,x"\n',
        "socket 'a': local_ports = '10,,x': empty entry in port list",
    ),
    (
        '[[socket]]\nname = "a"\nlocal_ports = 1\n[[socket]]\nname = "a"\nlocal_ports = 2\n',
        "socket 'a': name = 'a': socket name used twice",
    ),
    (
        '[[socket]]\nname = "a"\nlocal_ports = 1\ninterfaces = "*,lo"\n',
        "socket 'a': interfaces = '*,lo': \"*\" (all addresses) cannot be mixed with interface names",
    ),
    (
        '[[socket]]\nname = 7\nlocal_ports = 1\n',
        "name = 7: a socket name must be a non-empty word",
    ),
]


@pytest.mark.parametrize(("text", "expected"), LOADER_ERRORS)
def test_load_errors(tmp_path, text, expected):
    """
    Every problem in a file is one line naming the file, then whichever of
    socket, key and value apply: unknown keys, keys planned for later
    versions, [socket] instead of [[socket]], no sockets, bad values.
    """
    path = _write(tmp_path / "sock.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == path
    assert _one_line(info.value) == f"{path}: {expected}"


def test_load_static_dir_missing(tmp_path):
    """
    A missing C{static:} directory names the file, socket, key and the
    resolved directory.
    """
    path = _write(tmp_path / "sock.toml", '[[socket]]\nname = "a"\nhttp_ports = 1\nhttp = "static:nope"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    missing = str(tmp_path / "nope")
    assert _one_line(info.value) == (
        f"{path}: socket 'a': http = 'static:{missing}': directory {missing!r} does not exist"
    )


def test_load_static_without_directory(tmp_path):
    """
    C{http = "static:"} in a file is refused like in Python (it must not
    serve the configuration file's own directory).
    """
    path = _write(tmp_path / "sock.toml", '[[socket]]\nname = "a"\nhttp_ports = 1\nhttp = "static:"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert _one_line(info.value) == f"{path}: socket 'a': http = 'static:': static: needs a directory"


@pytest.mark.parametrize(
    "content",
    [b"[[socket]\n", b"[[socket]]\nlocal_ports = \n", b"[[socket]]\nname = 'a\n", b"\xff\xfe[[socket]]\n"],
)
def test_load_invalid_toml(tmp_path, content):
    """
    A file that is not valid TOML (or not UTF-8) is one line naming the file.
    """
    path = tmp_path / "sock.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert _one_line(info.value).startswith(f"{path}: not valid TOML: ")


def test_load_missing_file(tmp_path):
    """
    A missing file is one line naming it.
    """
    path = str(tmp_path / "absent.toml")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert _one_line(info.value) == f"{path}: no such file"


def test_load_directory(tmp_path):
    """
    A path that cannot be read as a file is one line naming it and the
    reason.
    """
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert _one_line(info.value) == f"{tmp_path}: cannot read: Is a directory"


@pytest.mark.parametrize("text", ["socket = [1, 2]\n", 'socket = ["a"]\n'])
def test_load_socket_entries_not_tables(tmp_path, text):
    """
    C{socket} written as an array of non-tables is a one-line configuration
    error naming the file, not a traceback.
    """
    path = _write(tmp_path / "sock.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert _one_line(info.value).startswith(f"{path}: ")


# --------------------------------------------------------------------------
# flags

def test_no_flags_is_embedded_default():
    """
    No options at all (or only options left unset) give the embedded
    default of SPEC section 3.
    """
    assert config_from_flags({}) == embedded_default()
    assert config_from_flags({"tcp": None, "config": None}) == embedded_default()


def test_embedded_default():
    """
    The embedded default is one tcp socket sock0 on loopback: echo on 8001,
    the status page on 8080, accepting anyone, master switch on.
    """
    config = embedded_default()
    assert (config.incoming_enabled, config.file, len(config.sockets)) == (True, None, 1)
    sock = config.sockets[0]
    assert (
        sock.name, sock.protocol, sock.incoming, sock.local_ports, sock.http_ports, sock.data_ports,
        sock.interfaces, sock.handler, sock.http,
    ) == (
        "sock0", "tcp", IncomingMode.ANY_IP_ANY_PORT, (8001,), (8080,), (8001,), ("lo",), "echo", "status",
    )


FLAG_CASES = [
    (
        {"tcp": "8001,8002", "http": "8080", "incoming": "any-ip-any-port", "interfaces": "lo",
         "handler": "echo"},
        SocketConfig(name="sock0", protocol="tcp", incoming=ANY, local_ports=(8001, 8002),
                     http_ports=(8080,), interfaces=("lo",), handler="echo"),
    ),
    (
        {"name": "lab", "tcp": "9000-9001", "incoming": "specific-ip-port", "target-ip": "127.0.0.2",
         "target-port": "4000", "handler": "discard", "max-connections": "5",
         "max-connections-per-ip": "2", "idle-timeout": "1.5", "backlog": "10"},
        SocketConfig(name="lab", incoming=IncomingMode.SPECIFIC_IP_PORT,
                     target_ip=(IPv4Address("127.0.0.2"),), target_port=4000, local_ports=(9000, 9001),
                     handler="discard", max_connections=5, max_connections_per_ip=2, idle_timeout=1.5,
                     backlog=10),
    ),
    (
        {"http": "8080", "http-resource": "status"},
        SocketConfig(http_ports=(8080,)),
    ),
]


@pytest.mark.parametrize(("flags", "expected"), FLAG_CASES)
def test_flags(flags, expected):
    """
    Flags build exactly one socket, equal field by field to the
    SocketConfig written out by hand.
    """
    assert config_from_flags(flags) == ServiceConfig((expected,))


def test_flags_config_file(tmp_path):
    """
    C{--config} alone loads the file.
    """
    path = _write(tmp_path / "sock.toml", '[[socket]]\nname = "f"\nlocal_ports = 1\n')
    assert config_from_flags({"config": path}) == load_config(path)


FLAG_ERRORS = [
    ({"config": "sock.toml", "tcp": "8001"}, "--config: --config cannot be mixed with --tcp"),
    ({"config": "sock.toml", "name": "x", "tcp": "1"}, "--config: --config cannot be mixed with --name"),
    ({"handler": "echo"},
     "give --tcp, --http, --udp, --unix or --listen (or no options for the embedded default)"),
    ({"udp": "9001", "http": "80"}, "--udp: --udp cannot be mixed with --http (flags build one socket)"),
    ({"mode": "0600", "tcp": "1"}, "--mode: --mode applies to --unix sockets"),
    ({"unix": "/tmp/x.sock", "udp": "1"},
     "--udp: --udp cannot be mixed with --unix (flags build one socket)"),
    ({"tcp": "10,,x"}, "socket 'sock0': --tcp = '10,,x': empty entry in port list"),
    ({"tcp": ""}, "socket 'sock0': --tcp: a tcp socket needs local_ports, http_ports or listen"),
    ({"tcp": "1", "http": "x"}, "socket 'sock0': --http = 'x': 'x' is not a port number"),
    (
        {"tcp": "1", "incoming": "specific-ip-any-port", "target-ip": "nope"},
        "socket 'sock0': --target-ip = 'nope': 'nope' is not an IP address or network",
    ),
    (
        {"tcp": "1", "incoming": "specific-ip-any-port"},
        "socket 'sock0': --target-ip: incoming = 'specific-ip-any-port' needs target_ip",
    ),
    (
        {"tcp": "1", "incoming": "specific-ip-port", "target-ip": "127.0.0.2"},
        "socket 'sock0': --target-port: incoming = 'specific-ip-port' needs target_port",
    ),
    (
        {"tcp": "1", "incoming": "sometimes"},
        "socket 'sock0': --incoming = 'sometimes': unknown incoming mode",
    ),
    ({"tcp": "1", "interfaces": "*,lo"}, "socket 'sock0': --interfaces = '*,lo': "),
    ({"tcp": "1", "handler": "nosuch"}, "socket 'sock0': --handler = 'nosuch': unknown handler 'nosuch'"),
    ({"http": "1", "http-resource": "nosuch"}, "socket 'sock0': --http-resource = 'nosuch': "),
    ({"tcp": "1", "max-connections": "0"}, "socket 'sock0': --max-connections = '0': "),
    ({"tcp": "1", "idle-timeout": "-1"}, "socket 'sock0': --idle-timeout = '-1': "),
    ({"tcp": "1", "name": "a b"}, "--name = 'a b': a socket name must be a non-empty word"),
]


@pytest.mark.parametrize(("flags", "expected"), FLAG_ERRORS)
def test_flag_errors(flags, expected):
    """
    Flag errors are one line naming the flag (C{--tcp}, not the field name
    C{local_ports}), the socket and the value; C{--config} cannot be mixed
    with other flags and some port flag is required.
    """
    with pytest.raises(ConfigError) as info:
        config_from_flags(flags)
    assert _one_line(info.value).startswith(expected)
