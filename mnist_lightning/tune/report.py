"""What a search tells its user: one line per finished trial, then the table of the best trials, the best trial's
config as ``best.yaml`` and Optuna's plots."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from mnist_lightning.cli import FOLLOW_ROOT
from mnist_lightning.errors import one_line


def progress(study: optuna.Study, number: int, metric: str) -> str:
    """One line per finished trial: its fate, the study's counts and the best so far."""
    trials = study.get_trials(deepcopy=False)
    count = {state: sum(t.state == state for t in trials) for state in TrialState}
    (this,) = [t for t in trials if t.number == number]
    shown = f"{metric} {this.value:.4f}" if this.value is not None else this.state.name.lower()
    line = (
        f"trial {number}: {shown} | done {count[TrialState.COMPLETE]}, running {count[TrialState.RUNNING]}, "
        f"pruned {count[TrialState.PRUNED]}, failed {count[TrialState.FAIL]}"
    )
    if count[TrialState.COMPLETE]:
        line += f" | best {metric} {study.best_value:.4f} (trial {study.best_trial.number})"
    return line


def report(study: optuna.Study, folder: Path, metric: str, top: int = 5) -> None:
    """The table of the best trials, the best trial's config as ``best.yaml``, and the plots."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        print("no trial completed: nothing to report")
        return
    ranked = sorted(complete, key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")[:top]
    names = list(ranked[0].params)
    rows = [["trial", metric, *names]] + [
        [str(t.number), f"{t.value:.4f}", *(short(t.params[n]) for n in names)] for t in ranked
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    best_yaml = folder / "best.yaml"
    write_best_config(study.best_trial, best_yaml)
    print(f"best trial {study.best_trial.number}: {best_yaml} (python train.py fit --config {best_yaml})")
    plots = write_plots(study, folder / "plots")
    if plots:
        print(f"plots: {', '.join(str(p) for p in plots)}")


def short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_best_config(trial: optuna.trial.FrozenTrial, path: Path) -> None:
    """The trial's full config (as train.py saved it), made to start a new run wherever it is used."""
    run = Path(trial.user_attrs["run"])
    config = yaml.safe_load((run / "config.yaml").read_text())
    trainer = config.get("trainer", {})
    root = trainer.get("default_root_dir")
    trainer["default_root_dir"] = None
    loggers = trainer.get("logger")
    for spec in loggers if isinstance(loggers, list) else [loggers]:
        if isinstance(spec, dict) and isinstance(spec.get("init_args"), dict):
            init = spec["init_args"]
            if "version" in init:
                init["version"] = None
            if init.get("save_dir") == root:
                init["save_dir"] = FOLLOW_ROOT
    config["ckpt_path"] = None
    header = f"# Best trial {trial.number} ({run}): value {trial.value!r}.\n"
    header += f"# Reproduce: python train.py fit --config {path}\n"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(header + yaml.safe_dump(config, sort_keys=False))
    tmp.replace(path)


def write_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Optuna's plots as HTML (plotly is optional: without it, one line says so)."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        print("plots skipped: pip install plotly (or the project's `plots` extra) to get them")
        return []
    from optuna import visualization

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    plots = {
        "history": visualization.plot_optimization_history,
        "importances": visualization.plot_param_importances,
        "parallel_coordinates": visualization.plot_parallel_coordinate,
    }
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                figure = plot(study)
        except (ValueError, RuntimeError) as err:  # e.g. importances need two completed trials
            print(f"plot {name} skipped: {one_line(str(err))}")
            continue
        path = folder / f"{name}.html"
        figure.write_html(path, include_plotlyjs="directory")
        written.append(path)
    return written
