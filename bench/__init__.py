"""Benchmarks: performance measurements that never run as timed test assertions."""
