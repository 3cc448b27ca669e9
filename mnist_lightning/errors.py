"""The project's own errors: each carries a message a user can act on, and the CLI prints just that."""


class ConfigError(ValueError):
    """An argument or hyperparameter is out of range; the message says what was expected."""


class DataError(RuntimeError):
    """A data file is missing, damaged or cannot be fetched; the message says what to do."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged or unsafe to load."""


class TrainingDivergedError(RuntimeError):
    """The loss or a parameter became NaN or infinite."""
