"""Benchmarks: fills end to end against a raw floor and dlt's rest_api, and parallel snapshots."""
