"""Where a study lives: its database URL (shown with the password field masked wherever it is echoed), and opening
the study once however many processes start at the same moment, with Optuna's heartbeat on.

SQLite (the default, ``ROOT/search/STUDY/study.db``) serves the processes of one machine, PostgreSQL several
machines. Every running trial records a heartbeat in the database; a trial whose heartbeat stopped for
``GRACE_PERIOD`` seconds (its process died, on whatever machine) is marked failed by the next process that starts
a trial, and another takes its place.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial
from sqlalchemy.engine import make_url

from mnist_lightning.errors import ConfigError, one_line

MASK = "***"
CREATE_ATTEMPTS = 5
"""Processes creating Optuna's schema at the same moment race (the loser's tables or types already exist): the
loser retries, and then finds the schema made."""
HEARTBEAT_SECONDS = 10
GRACE_PERIOD = 60
"""Seconds without a heartbeat after which a running trial counts as dead."""


def mask_url(url: str) -> str:
    """The URL with its password field (and a ``?password=`` query value) as ``***``: the form every message shows.
    A value SQLAlchemy cannot read is not shown at all (where its password is cannot be known)."""
    try:
        parsed = make_url(url)
    except Exception:
        return "(not a database URL; not shown, it may hold a password)"
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": MASK})
    return parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", MASK)


def driver_message(err: BaseException, url: str) -> str:
    """What a database driver said, as one line; left out entirely when it repeats the password (a message is
    never built by cutting the password out of a text that held it)."""
    said = one_line(str(err))
    parsed = make_url(url)
    secrets = {parsed.password or "", str(parsed.query.get("password") or "")} - {""}
    if any(form in said for secret in secrets for form in (secret, quote(secret, safe=""))):
        return "the driver's message is left out: it repeats the password"
    return said


def on_dead_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna's call for a trial whose heartbeat stopped: it was marked failed and another takes its place."""
    where = f"process {trial.user_attrs.get('pid')} on {trial.user_attrs.get('host')}"
    print(f"trial {trial.number} stopped mid-run ({where}): marked failed", flush=True)


class Storage:
    """One process's view of the database holding a study."""

    def __init__(self, url: str | None, folder: Path, study_name: str) -> None:
        self.default = url is None
        self.url = f"sqlite:///{(folder / 'study.db').resolve()}" if url is None else url
        self.folder, self.study_name = folder, study_name
        try:
            self.backend = make_url(self.url).get_backend_name()
        except Exception:  # its message repeats the URL: not shown
            raise ConfigError(
                "--storage: not a database URL SQLAlchemy reads (dialect+driver://user:password@host/database); "
                "the value is not shown, it may hold a password"
            ) from None
        self.shown = mask_url(self.url)

    def open(self, search_direction: str, pruner: optuna.pruners.BasePruner, fingerprint: str) -> optuna.Study:
        """The study, created on first use (once, whoever else starts now); one made for another search is refused.
        Nothing is written before the database answers, except the default SQLite file's folder."""
        if self.default:
            self.folder.mkdir(parents=True, exist_ok=True)
        try:
            study = self.create(search_direction, pruner)
        except ImportError as err:
            raise ConfigError(
                f"--storage {self.shown}: its driver is not installed ({driver_message(err, self.url)})"
            ) from None
        except Exception as err:  # SQLAlchemy's errors: no server, wrong password, no such database
            raise ConfigError(f"--storage {self.shown}: cannot open it ({driver_message(err, self.url)})") from None
        recorded = study.user_attrs.get("search")
        if recorded is None:
            study.set_user_attr("search", fingerprint)
        elif recorded != fingerprint:
            raise ConfigError(
                f"study {self.study_name!r} in {self.shown} was created with another search space, "
                "metric or direction: pass --study_name NEW (or remove the study) to start a new one"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        return study

    def create(self, direction: str, pruner: optuna.pruners.BasePruner) -> optuna.Study:
        """Optuna's schema and the study, with the heartbeat on; a process that lost the race to create the schema
        retries (PostgreSQL's concurrent CREATE TYPE/TABLE fail with an integrity or a programming error)."""
        engine: dict[str, Any] = {"connect_args": {"timeout": 60}} if self.backend == "sqlite" else {}
        if self.backend != "sqlite":
            engine["pool_pre_ping"] = True
        attempt = 0
        while True:
            try:
                with warnings.catch_warnings():  # the heartbeat is "experimental"; failed_trial_callback is 4.2-5's
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    warnings.simplefilter("ignore", FutureWarning)
                    storage = optuna.storages.RDBStorage(
                        self.url,
                        engine_kwargs=engine,
                        heartbeat_interval=HEARTBEAT_SECONDS,
                        grace_period=GRACE_PERIOD,
                        failed_trial_callback=on_dead_trial,
                    )
                return optuna.create_study(
                    storage=storage, study_name=self.study_name, direction=direction, load_if_exists=True, pruner=pruner
                )
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                attempt += 1
                if attempt == CREATE_ATTEMPTS:
                    raise
                time.sleep(0.2 * attempt)
