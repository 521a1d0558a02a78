"""Figures of the fault scenarios 7-12: one JSON line per test on stdout (shown by
`pytest -rP`), the numbers docs/reliability.md quotes."""

from __future__ import annotations

import json
from typing import Any


def figure(scenario: str, **numbers: Any) -> None:
    """Print the figures of one scenario's run as `FIGURE <scenario> {...}`."""
    print(f"FIGURE {scenario} {json.dumps(numbers, sort_keys=True, default=str)}")
