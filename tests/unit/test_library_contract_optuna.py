"""What the search relies on in Optuna beyond its documented functions: each test names the file that uses it and
why no documented hook exists, and fails loudly when an upgrade changes it."""

from __future__ import annotations

import optuna
import pytest


def draws(study: optuna.Study, seed: int) -> float:
    study.sampler = optuna.samplers.TPESampler(seed=seed)
    trial = study.ask()
    value = trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, value)
    return value


@pytest.mark.unit
def test_a_study_samples_with_the_sampler_assigned_to_it() -> None:
    """mnist_lightning/tune/runner.py (Tuner.next_trial) seeds a fresh sampler for every trial, from the search's
    seed and the study's size, by assigning ``study.sampler`` (a plain attribute that ``create_study`` sets, not in
    the documented API): the study of a search is opened once, and ``load_study(sampler=...)`` per trial would
    open a second connection to its database for every trial."""
    first = optuna.create_study()
    second = optuna.create_study()
    assert draws(first, 7) == draws(second, 7)
    assert draws(first, 8) != draws(second, 9)
