"""Benchmarks on the real broker and database (printing figures; never asserting time)."""
