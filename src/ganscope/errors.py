"""The one error type for mistakes a user can make (bad flags, missing files, corrupt data).

The CLI prints such an error as one line on stderr and exits with status 2; anything else
is a bug in ganscope and keeps its traceback.
"""


class GanscopeError(Exception):
    """A user-caused problem. The message says what is wrong and how to fix it."""


class TrainingDiverged(GanscopeError):
    """A loss became NaN or infinite; the last good checkpoint is kept on disk."""
