"""Benchmarks on the real broker and database: `python -m bench` (README, Benchmarks).

The services are driven as black boxes (real `programmes` processes, real topics,
the database and consumer groups observed from outside); figures are printed and
written as JSON, never asserted.
"""
