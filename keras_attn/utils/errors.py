"""One-line error messages: what the command line and the loaders show instead of a traceback."""

from __future__ import annotations


def one_line(error: BaseException, *, first_line: bool = False) -> str:
    """The message of `error` on one line.

    `ValueError` and `OSError` messages are the project's own or the system's and are shown as
    they are; any other type is prefixed with its name (`KeyError: 'x'`), so the message says
    what kind of failure it was.

    Args:
        error: the exception.
        first_line: keep only the first line of a multi-line message (the summary line of
            TensorFlow, tfds and Keras errors); otherwise all lines are joined with spaces.
    """
    text = str(error).strip()
    if first_line:
        text = text.splitlines()[0] if text else ""
    text = " ".join(text.split())
    if isinstance(error, (ValueError, OSError)):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
