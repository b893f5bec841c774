"""
The per-connection record: what every connection sets is in the record,
the rest in extras made the first time one is set, and a record reads the
same either way.
"""

from __future__ import annotations

import pytest

from twisted_sock.net.connection import NO_EXTRAS, RECORD_FIELDS, ConnectionExtras, ConnectionRecord
from twisted_sock.reasons import ShutdownReason


def test_setting_an_extra_leaves_other_records_and_the_shared_default_alone():
    """
    Setting a rarely-set fact (C{tls}, C{alpn}) on one record gives it its
    own extras; another record and the shared default still read the
    defaults.
    """
    one, other = ConnectionRecord(None, True, 1.0), ConnectionRecord(None, True, 2.0)
    one.tls, one.alpn = True, "h2"
    assert (one.tls, one.alpn) == (True, "h2")
    assert (other.tls, other.alpn, other.proxy_peer) == (False, None, None)
    assert NO_EXTRAS == ConnectionExtras()


def test_keywords_and_positions_set_the_same_facts():
    """
    The record takes (peer, counted, started, credentials) by position and
    any fact by keyword; its repr shows every fact.
    """
    record = ConnectionRecord(None, False, 3.0, (1, 2, 3), reason=ShutdownReason.NORMAL, tls_closing=True)
    assert (record.counted, record.started, record.credentials) == (False, 3.0, (1, 2, 3))
    assert (record.reason, record.tls_closing, record.default_reason) == (ShutdownReason.NORMAL, True, None)
    assert all(f"{name}=" in repr(record) for name in RECORD_FIELDS)


def test_an_unknown_fact_is_refused():
    """
    A keyword that is no fact of the record raises C{TypeError}, as a
    dataclass would, instead of being stored nowhere.
    """
    with pytest.raises(TypeError, match="bogus"):
        ConnectionRecord(bogus=1)
