"""The single exception type of the dev stack."""


class DevStackError(Exception):
    """A dev-stack failure, carrying a one-line message meant for a human."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
