"""
Pure decisions: who may connect, limits, log rate limiting.

Nothing here does I/O or imports Twisted's networking.
"""
