"""fst: fast neural style transfer (Johnson et al. 2016) with a Gatys optimizer as reference."""

__version__ = "0.1.0"


class FstError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits non-zero."""
