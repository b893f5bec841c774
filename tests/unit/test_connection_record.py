"""
The per-connection record: what every connection sets is in the record,
the rest in extras made the first time one is set, and a record reads the
same either way.
"""

from __future__ import annotations

from dataclasses import astuple

from twisted_sock.net.connection import NO_EXTRAS, ConnectionExtras, ConnectionRecord


def test_setting_an_extra_leaves_other_records_and_the_shared_default_alone():
    """
    Setting a rarely-set fact (C{tls}, C{alpn}) on one record gives it its
    own extras; another record and the shared default still read the
    defaults.
    """
    one, other = ConnectionRecord(None, True, 1.0), ConnectionRecord(None, True, 2.0)
    one.tls, one.alpn = True, "h2"
    assert (one.tls, one.alpn) == (True, "h2")
    assert (other.tls, other.alpn, other.proxy_peer, other.credentials) == (False, None, None, None)
    assert astuple(NO_EXTRAS) == astuple(ConnectionExtras())


def test_every_fact_of_the_extras_reads_and_writes_through_the_record():
    """
    Each field of L{ConnectionExtras} is an attribute of the record that
    reads its default, then what was set.
    """
    names = ConnectionExtras.__slots__
    record = ConnectionRecord()
    for name in names:
        assert getattr(record, name) == getattr(NO_EXTRAS, name)
        setattr(record, name, f"set {name}")
    assert [getattr(record, name) for name in names] == [f"set {name}" for name in names]
    assert astuple(NO_EXTRAS) == astuple(ConnectionExtras())
