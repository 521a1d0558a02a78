"""structlog, configured once per process: JSON off a terminal, console on one."""

from __future__ import annotations

import logging
import sys

import orjson
import structlog

from shared.settings import Settings


def configure_logging(settings: Settings) -> None:
    """Route structlog and the standard library's logging through one renderer.

    The fleet's own lines (one per message: the hot path) go straight from
    structlog to stderr, filtered by level before any work and, in JSON, rendered
    by orjson; libraries' stdlib records get the same format through a handler.
    """
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if use_json:
        structlog.configure(
            processors=[
                *shared_processors,
                structlog.processors.StackInfoRenderer(),
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(serializer=orjson.dumps),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(level),
            logger_factory=structlog.BytesLoggerFactory(sys.stderr.buffer),
            cache_logger_on_first_use=True,
        )
        renderer: structlog.types.Processor = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        structlog.configure(
            processors=[*shared_processors, structlog.processors.StackInfoRenderer(), renderer],
            wrapper_class=structlog.make_filtering_bound_logger(level),
            logger_factory=structlog.WriteLoggerFactory(sys.stderr),
            cache_logger_on_first_use=True,
        )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka narrates every coordinator hiccup at INFO; keep its warnings.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
