"""
HTTP: the status resource (page, JSON, Prometheus metrics).
"""
