"""fst: fast neural style transfer (Johnson et al. 2016) with a Gatys optimizer as reference."""

__version__ = "0.1.0"


class FstError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits non-zero."""


ECHO_LIMIT = 80  # characters of a user's value quoted back in an error message


def shown(value) -> str:
    """A user's value for an error message: repr, cut to ECHO_LIMIT characters (a server must not
    echo a megabyte back, nor a terminal a page)."""
    text = repr(value)
    return text if len(text) <= ECHO_LIMIT else text[: ECHO_LIMIT - 5] + "...'"
