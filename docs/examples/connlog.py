"""
A twistd log observer: the usual text log on standard output, and each
ended connection (the events with ``connection_ended``) as one JSON line
in connections.jsonl in the current directory.

    PYTHONPATH=docs/examples twistd -n --pidfile= --logger connlog.observer sock -c sock.toml
"""

import json
import sys

from twisted.logger import textFileLogObserver

#: The fields of a connection event (see the operations page).
FIELDS = ("socket", "peer", "peer_port", "local_port", "mode", "tls", "alpn", "reason",
          "duration", "bytes_in", "bytes_out")


def observer():
    text = textFileLogObserver(sys.stdout)
    out = open("connections.jsonl", "a", buffering=1)

    def observe(event):
        text(event)
        if event.get("connection_ended"):
            record = {"time": round(event["log_time"], 3)}
            record.update((key, event.get(key)) for key in FIELDS)
            record["duration"] = round(record["duration"], 6)
            out.write(json.dumps(record) + "\n")

    return observe
