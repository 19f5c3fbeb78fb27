"""The errors deepbow raises on bad input, so callers (and the CLI) can catch ours alone."""


class DeepBowError(Exception):
    """Base class: the message names the problem and, where there is one, the file and line."""


class ModelFileError(DeepBowError):
    """A model directory is missing, corrupt, of an unknown format version or mismatched."""


class InputError(DeepBowError):
    """A line of an input file, or an argument, cannot be used."""
