"""
Listener modes and kinds (L{twisted_sock.net.kinds}): enums whose members
are their old strings everywhere output is made -- C{str()}, C{format()},
f-strings, C{%s}, C{repr()} and C{json.dumps} -- on the running Python
(CI runs 3.10 to 3.13; 3.11 changed C{Enum.__format__} for C{str} mixins).
No sockets.
"""

from __future__ import annotations

import json

import pytest

from twisted_sock.net.interfaces import ListenerSpec
from twisted_sock.net.kinds import ListenerKind, ListenerMode
from twisted_sock.stats import ListenerInfo

MEMBERS = [*ListenerMode, *ListenerKind]


def test_values_are_pinned():
    """
    The string values are the ones configuration, status and logs have
    always used.
    """
    assert [m.value for m in ListenerMode] == ["data", "http", "admin"]
    assert [k.value for k in ListenerKind] == ["plain", "tls", "starttls", "datagram",
                                               "multicast", "broadcast"]


@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: m.value)
def test_member_formats_as_its_value(member):
    """
    Every way output is made gives exactly the plain string, as a plain
    C{str}; the member also equals and hashes as it.
    """
    value = member.value
    assert str(member) == value and type(str(member)) is str
    assert f"{member}" == value
    assert f"{member:>12}|{member:<12}|{member:^12}" == f"{value:>12}|{value:<12}|{value:^12}"
    assert format(member) == value
    assert "{}|{:>9}".format(member, member) == "{}|{:>9}".format(value, value)  # noqa: UP032
    assert "%s|%9s" % (member, member) == "%s|%9s" % (value, value)  # noqa: UP031
    assert repr(member) == repr(value)
    assert f"{member!r}" == f"{value!r}"
    assert json.dumps(member) == json.dumps(value)
    assert json.dumps({member: [member]}, indent=1) == json.dumps({value: [value]}, indent=1)
    assert member == value and hash(member) == hash(value)


def test_spec_takes_strings_as_members():
    """
    A L{ListenerSpec} given the string values holds the enum members (so
    code compares with C{is}) and equals one built from the members; an
    unknown value is refused.
    """
    spec = ListenerSpec("s", "127.0.0.1", 443, "http", "tls")
    assert spec.mode is ListenerMode.HTTP and spec.kind is ListenerKind.TLS
    assert spec == ListenerSpec("s", "127.0.0.1", 443, ListenerMode.HTTP, ListenerKind.TLS)
    assert ListenerSpec("s", "127.0.0.1", 1, "data").kind is ListenerKind.PLAIN
    with pytest.raises(ValueError):
        ListenerSpec("s", "127.0.0.1", 1, "gopher")


@pytest.mark.parametrize(("mode", "kind", "protocol", "label"), [
    ("data", "plain", "tcp", "data"),
    ("http", "plain", "tcp", "http"),
    ("data", "tls", "tcp", "data+tls"),
    ("http", "tls", "tcp", "https"),
    ("data", "starttls", "tcp", "data+starttls"),
    ("data", "plain", "udp", "udp"),
    ("data", "multicast", "udp", "udp+multicast"),
    ("data", "broadcast", "udp", "udp+broadcast"),
    ("http", "plain", "unix", "unix+http"),
    ("data", "datagram", "unix", "unix+dgram"),
])
def test_labels_unchanged(mode, kind, protocol, label):
    """
    The listener labels logs print are the strings they were.
    """
    spec = ListenerSpec("s", "127.0.0.1", 1, mode, kind, protocol)
    assert spec.label == label and type(spec.label) is str


def test_status_json_unchanged():
    """
    A listener's status built from members serialises byte for byte as one
    built from strings.
    """
    members = ListenerInfo("127.0.0.1", 1, ListenerMode.DATA, kind=ListenerKind.MULTICAST)
    strings = ListenerInfo("127.0.0.1", 1, "data", kind="multicast")
    assert json.dumps(members.as_dict(), sort_keys=True) == json.dumps(strings.as_dict(), sort_keys=True)
    assert repr(members) == repr(strings)
