"""The one exception commands raise to fail with a single line."""


class CommandError(Exception):
    """A failure to report as `error: <message>` with exit code 1."""
