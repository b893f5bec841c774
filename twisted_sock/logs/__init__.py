"""
Logging: the service's own log observer and its line formats.

twistd's default observer formats every event through C{string.Formatter},
formats the timestamp per line and writes and flushes per line; under a
flood of connection-end events that cost more than the connections. The
observer here formats the timestamp once per second, renders simple format
strings from a cache and writes in batches, at most 50 ms late (see
C{docs/logging.rst}).

  - L{twisted_sock.logs.fields}: event fields as JSON-safe values.
  - L{twisted_sock.logs.lines}: an event as one line of text or JSON (pure).
  - L{twisted_sock.logs.observer}: the batching observer (I/O).
  - L{twisted_sock.logs.twistd}: where twistd's options send the log.
"""
