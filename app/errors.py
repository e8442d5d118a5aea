"""Errors the command line turns into a one-line message and a non-zero exit."""


class UsageError(ValueError):
    pass
