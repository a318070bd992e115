"""One exception type for every user-facing mistake.

The CLI prints an :class:`InrlabError` as a single line (``inrlab: error: ...``) instead of a
traceback, so every message must name the problem *and* the fix.
"""


class InrlabError(ValueError):
    """Bad input or an unrecoverable run state, with a one-line message naming the fix."""


class DivergedError(InrlabError):
    """Training produced a non-finite loss; the last good checkpoint and metrics were kept."""


class RunInterrupted(InrlabError):
    """Training was interrupted (Ctrl-C); with a run folder, a checkpoint to resume from was saved."""
