"""`python -m bench [--scale smoke|full] [--runs N] [--only a,b] [--<size> N]`."""

from __future__ import annotations

import asyncio
import logging
import sys

from bench.harness import run
from bench.options import parse_options


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    # aiokafka logs at ERROR what it then handles itself (e.g. a coordinator move).
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    return asyncio.run(run(options))


if __name__ == "__main__":
    sys.exit(main())
