"""Errors that reach the user as one line on stderr and exit status 1, never a traceback."""


class UserError(Exception):
    """Bad input or environment: the message is the whole story for the user."""
