"""fst: fast neural style transfer (Johnson et al. 2016) with a Gatys optimizer as reference."""

import math

__version__ = "0.1.0"


class FstError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits non-zero."""


ECHO_LIMIT = 80  # characters of a user's value quoted back in an error message


def shown(value) -> str:
    """A user's value for an error message: repr, cut to ECHO_LIMIT characters (a server must not
    echo a megabyte back, nor a terminal a page)."""
    text = repr(value)
    return text if len(text) <= ECHO_LIMIT else text[: ECHO_LIMIT - 5] + "...'"


def parse_weighted(text: str, option: str, usage: str, sep: str = "=", default: float | None = None) -> list[tuple[str, float]]:
    """The NAME<sep>WEIGHT lists users type (--mix, --style-weight-of, --style-layers):
    'a=0.6,b=0.4' -> [('a', 0.6), ('b', 0.4)]; a bare NAME weighs `default` (None: refused).
    Every name non-empty, every weight finite and >= 0, else FstError naming the option, the part
    and `usage`. An empty text gives []: the caller says whether that is allowed."""
    parts = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, has_sep, value = (s.strip() for s in item.partition(sep))
        try:
            weight = float(value) if has_sep else default
        except ValueError:
            weight = None
        if not name or weight is None or not 0 <= weight < math.inf:  # NaN fails too
            raise FstError(f"{option}: bad part {shown(item)} (use {usage})")
        parts.append((name, weight))
    return parts
