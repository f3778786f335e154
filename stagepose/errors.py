"""Errors a user can act on.

Everything a technician can cause (a bad file, a wrong field, a missing engine) raises a subclass of
`StageposeError` with a message that names the file, line or field and says what to do. The CLI prints
these without a traceback; anything else is a bug and keeps its traceback.
"""


class StageposeError(Exception):
    """Base class for errors caused by input the user can fix."""


class ConfigError(StageposeError):
    """A configuration file (show, experiment, calibration) is invalid."""


class DataError(StageposeError):
    """A data set, image or annotation file is missing or malformed."""


class ModelError(StageposeError):
    """A model preset, checkpoint or exported model is unknown or does not match."""


class EngineError(StageposeError):
    """An inference engine or backend is missing or cannot run on this machine."""
