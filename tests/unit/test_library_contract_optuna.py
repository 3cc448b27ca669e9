"""What the search relies on in Optuna beyond its documented functions: each test names the file that uses it and
why no documented hook exists, and fails loudly when an upgrade changes it."""

from __future__ import annotations

import optuna


def draws(study: optuna.Study, seed: int) -> float:
    study.sampler = optuna.samplers.TPESampler(seed=seed)
    trial = study.ask()
    value = trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, value)
    return value


def test_a_study_samples_with_the_sampler_assigned_to_it() -> None:
    """mnist_lightning/tune/runner.py (Tuner.reseed) seeds a fresh sampler for every trial, from the search's
    seed and the trial's number, by assigning ``study.sampler`` (a plain attribute that ``create_study`` sets, not in
    the documented API): the study of a search is opened once, and ``load_study(sampler=...)`` per trial would
    open a second connection to its database for every trial."""
    first = optuna.create_study()
    second = optuna.create_study()
    assert draws(first, 7) == draws(second, 7)
    assert draws(first, 8) != draws(second, 9)


def test_a_sampler_assigned_inside_the_objective_draws_that_trial() -> None:
    """Tuner.objective assigns it when a trial starts, before any value is drawn (the trial's number, which the
    storage hands out once, is known only then): a trial must ask the study's sampler at each suggestion, not keep
    the one it was created with."""

    def objective(trial: optuna.Trial) -> float:
        trial.study.sampler = optuna.samplers.TPESampler(seed=8 + trial.number)
        return trial.suggest_float("x", 0.0, 1.0)

    looped = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=7))
    looped.optimize(objective, n_trials=2)
    by_hand = optuna.create_study()
    assert [t.params["x"] for t in looped.trials] == [draws(by_hand, 8), draws(by_hand, 9)]
