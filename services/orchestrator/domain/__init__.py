"""The orchestrator's rules: pure functions of the facts, no I/O, no clock."""
