"""
Benchmarks of twisted-sock against bare Twisted (not a test suite: run
C{python -m bench}; see bench/README.md).
"""
