"""Errors that reach the user as one line on stderr and a non-zero exit status, never a
traceback."""


class UserError(Exception):
    """Bad input or environment: the message is the whole story for the user.

    `status` is the exit status: 1 unless python itself uses another one for the same
    mistake (2 for a script it cannot open, or a usage error)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status
