"""The project's exceptions.

Every error raised for bad user input is a `PoseNASError` whose message names what was wrong
(the file, the field, the value) and what is allowed. They subclass `ValueError` so that callers
that only know the standard library still catch them.
"""

__all__ = ["PoseNASError", "DataError", "SpecError", "ConfigError", "CheckpointError"]


class PoseNASError(ValueError):
    """Base class: bad input, named precisely."""


class DataError(PoseNASError):
    """A dataset file, annotation, image or sample is missing, corrupt or violates its schema."""


class SpecError(PoseNASError):
    """An architecture spec / genotype is malformed or out of bounds."""


class ConfigError(PoseNASError):
    """A configuration value, CLI option or notebook parameter is unknown or invalid."""


class CheckpointError(PoseNASError):
    """A checkpoint is unreadable or does not match the spec it is loaded into."""
