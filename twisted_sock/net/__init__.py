"""
Twisted I/O: the interface table and listener plan, the filtering TCP port
and its transport, per-socket runtime state.
"""
