"""The project's one error type for failures a user can fix.

The CLI prints ``error: <message>`` and exits non-zero; the Blender operator reports it.
Any other exception is a bug and keeps its traceback.
"""


class CaptureError(Exception):
    """A user-facing failure: message says what was expected, what was found, and the fix."""


class NoHandError(CaptureError):
    """The clip was read but no hand was found on any frame: an outcome of a capture, not a broken input.
    The worker protocol's "error" event carries ``reason: "no_hand"`` for it (the batch records it as such)."""

    reason = "no_hand"
