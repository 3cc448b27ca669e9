"""The project's own errors, each with a message a user can act on (the CLI prints just that), and one-line forms
of the libraries' long error messages."""

import re


class ConfigError(ValueError):
    """An argument or hyperparameter is out of range; the message says what was expected."""


class DataError(RuntimeError):
    """A data file is missing, damaged or cannot be fetched; the message says what to do."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged or unsafe to load."""


class TrainingDivergedError(RuntimeError):
    """The loss or a parameter became NaN or infinite."""


class TrainingInterruptedError(RuntimeError):
    """Training was stopped by a signal after saving ``last.ckpt``; the process exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


NOISE = re.compile(
    r"^(- )?(Does not validate against any of the Union subtypes|Subtypes:|Errors:|Given value|"
    r"Expected a <class 'NoneType'>|Problem with given class_path|Expected a dot import path string|"
    r"Got value: Namespace)"
)
TYPE = re.compile(r"Expected a (?:<class '([\w.]+)'>|typing\.Literal\[(.*)\]|(.+?))(?:\. Got value: .*)?$")
REWRITES = (
    (r"Expected a path but (\S+) either not accessible or invalid", r"'\1' is not a class this option takes"),
    (r"Option '(\w+)' is not accepted", r"no argument '\1' here"),
    (r"the following arguments are required: (.*)", r"missing required argument(s) \1"),
)


def _given(message: str) -> tuple[str, str | None]:
    """The nested option (``lr`` in ``--model.lr``) and the value given, from jsonargparse's message."""
    nested = re.findall(r"NestedArg\(key='([^']+)', val='(.*)'\)\s*$", message, flags=re.MULTILINE)
    if nested:
        return nested[-1]
    given = re.findall(r"(?:Given value|Got value): (.*)$", message, flags=re.MULTILINE)
    return "", given[-1] if given else None


def one_line(message: str) -> str:
    """jsonargparse's error tree as one line: the option, what was given and what is accepted.

    >>> one_line('Parser key "data.batch_size":\\n  Expected a <class \\'int\\'>. Got value: 1.5')
    "--data.batch_size: expected int, got '1.5'"
    """
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    head = re.match(r'Parser key "([^"]+)":\s*(.*)', lines[0]) if lines else None
    if head is None:
        return " ".join(lines)
    nested, given = _given(message)
    keys = [head.group(1)]
    reasons: list[str] = []
    expected: list[str] = []
    for line in [head.group(2), *lines[1:]]:
        line = re.sub(r"^Type .*? expects a function or a callable class: ", "", line.removeprefix("- "))
        inner = re.match(r'Parser key "([^"]+)":\s*(.*)', line)
        if inner:
            keys += [inner.group(1)] if inner.group(1) not in nested.split(".") else []
            line = inner.group(2)
        if not line or NOISE.match(line):
            continue
        kind = TYPE.match(line)
        if kind and not line.startswith("Expected a path"):
            name = kind.group(1) or (f"one of {kind.group(2)}" if kind.group(2) else kind.group(3))
            expected += [name] if name not in expected else []
            continue
        reason = re.sub(r"\. Got value: .*$", "", line).rstrip(".")
        for pattern, replacement in REWRITES:
            reason = re.sub(pattern, replacement, reason)
        reasons += [reason] if reason not in reasons else []
    option = "--" + ".".join([*keys, nested] if nested else keys)
    said = reasons[-1] if reasons else "expected " + " or ".join(expected) if expected else "invalid value"
    shown = f", got {given!r}" if given is not None and not given.startswith("Namespace(") and given not in said else ""
    return f"{option}: {said}{shown}"
