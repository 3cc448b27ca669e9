"""Where a study lives: its database URL (shown with the password masked wherever it is echoed), creating the
study once however many processes start at the same moment, the lock that makes counting trials exact across
processes and machines, and whether the process running a trial is still alive.

SQLite (the default, ``ROOT/search/STUDY/study.db``) serves the processes of one machine: a lock file next to the
database serializes them, and a trial's process is alive when its process id runs on this machine. PostgreSQL
serves several machines: session-level advisory locks serialize creating and counting, and every running trial
holds a lock of its own that the server releases when its process dies, so any process sees at once that it is
dead. Other databases get neither: counting can overshoot by the number of processes less one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from mnist_lightning.errors import ConfigError, one_line
from mnist_lightning.fileio import process_alive

MASK = "***"
CREATE_ATTEMPTS = 5
"""Databases without a lock this module knows: creating the schema is retried when another process raced it."""


def mask_url(url: str) -> str:
    """The URL with its password (also a ``?password=`` query) replaced by ``***``: the form every message shows."""
    try:
        parsed = make_url(url)
    except Exception:  # not a URL SQLAlchemy reads: hide whatever sits between ``user:`` and ``@``
        return re.sub(r"(://[^/@:]*):[^/@]*@", rf"\1:{MASK}@", url)
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": MASK})
    return parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", MASK)


def secrets(url: str) -> list[str]:
    """The URL's password as written and as decoded: what must never reach a message."""
    found = re.findall(r"://[^/@:]*:([^/@]+)@", url) + re.findall(r"[?&]password=([^&]+)", url)
    with contextlib.suppress(Exception):
        parsed = make_url(url)
        found += [parsed.password or "", str(parsed.query.get("password") or "")]
    return sorted({secret for secret in found if secret}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's error, say) with the URL masked and its password gone."""
    text = text.replace(url, mask_url(url))
    for secret in secrets(url):
        text = text.replace(secret, MASK)
    return text


def lock_key(name: str) -> int:
    """A 32-bit advisory lock key for a name (PostgreSQL's two-key locks take two int4)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)


class Storage:
    """One process's view of the database holding a study."""

    def __init__(self, url: str | None, folder: Path, study_name: str) -> None:
        self.default = url is None
        self.url = f"sqlite:///{(folder / 'study.db').resolve()}" if url is None else url
        self.folder, self.study_name = folder, study_name
        try:
            parsed = make_url(self.url)
        except Exception as err:
            raise ConfigError(f"--storage {self.shown}: not a database URL ({self.clean(err)})") from None
        self.backend = parsed.get_backend_name()
        self.sqlite_file = Path(parsed.database) if self.backend == "sqlite" and parsed.database else None
        if self.sqlite_file is not None and parsed.database == ":memory:":
            self.sqlite_file = None
        self.study_key = lock_key(f"mnist_lightning.tune study {study_name}")
        self._connection: sqlalchemy.Connection | None = None
        self.held: set[int] = set()  # the trials this process runs (PostgreSQL's locks are re-entrant)

    @property
    def shown(self) -> str:
        return mask_url(self.url)

    @property
    def postgresql(self) -> bool:
        return self.backend == "postgresql"

    def clean(self, err: BaseException | str) -> str:
        return scrub(one_line(str(err)), self.url)

    def open(self, search_direction: str, pruner: optuna.pruners.BasePruner, fingerprint: str) -> optuna.Study:
        """The study, created on first use (once, whoever else starts now); one made for another search is refused.
        Nothing is written before the database answers, except the default SQLite file's folder."""
        if self.default:
            self.folder.mkdir(parents=True, exist_ok=True)
        engine: dict[str, Any] = {"connect_args": {"timeout": 60}} if self.backend == "sqlite" else {}
        if self.backend != "sqlite":
            engine["pool_pre_ping"] = True
        try:
            with self.create_lock():
                study = self.create(engine, search_direction, pruner)
        except ImportError as err:
            raise ConfigError(f"--storage {self.shown}: its driver is not installed ({self.clean(err)})") from None
        except ConfigError:
            raise
        except Exception as err:  # SQLAlchemy's errors: no server, wrong password, no such database
            raise ConfigError(f"--storage {self.shown}: cannot open it ({self.clean(err)})") from None
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

    def create(self, engine: dict[str, Any], direction: str, pruner: optuna.pruners.BasePruner) -> optuna.Study:
        """Optuna's schema and the study; where no lock guards creation, a process that lost the race retries."""
        attempt = 0
        while True:
            try:
                return optuna.create_study(
                    storage=optuna.storages.RDBStorage(self.url, engine_kwargs=engine),
                    study_name=self.study_name,
                    direction=direction,
                    load_if_exists=True,
                    pruner=pruner,
                )
            except sqlalchemy.exc.IntegrityError:
                attempt += 1
                if attempt == CREATE_ATTEMPTS:
                    raise
                time.sleep(0.2 * attempt)

    def connection(self) -> sqlalchemy.Connection:
        """This process's own PostgreSQL session: it holds the advisory locks (released when it ends)."""
        if self._connection is None:
            engine = sqlalchemy.create_engine(self.url, poolclass=NullPool)
            self._connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._connection

    def advisory(self, call: str, second: int) -> Any:
        return self.connection().execute(sqlalchemy.text(f"SELECT {call}(:a, :b)"), {"a": self.study_key, "b": second})

    @contextlib.contextmanager
    def create_lock(self) -> Iterator[None]:
        """PostgreSQL: one process at a time creates Optuna's schema (concurrent creation fails on its types)."""
        if not self.postgresql:
            yield
            return
        key = lock_key("mnist_lightning.tune schema")
        connection = self.connection()
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:a, 0)"), {"a": key})
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:a, 0)"), {"a": key})

    @contextlib.contextmanager
    def counting_lock(self) -> Iterator[None]:
        """Counting the study's trials and starting one is one step for every process sharing the database."""
        if self.postgresql:
            self.advisory("pg_advisory_lock", -1)
            try:
                yield
            finally:
                self.advisory("pg_advisory_unlock", -1)
            return
        if self.sqlite_file is None:
            yield
            return
        with self.sqlite_file.with_name(self.sqlite_file.name + ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    @staticmethod
    def owner() -> dict[str, Any]:
        """Who runs a trial, as its user attributes record it."""
        return {"host": socket.gethostname(), "pid": os.getpid()}

    def claim(self, number: int) -> dict[str, Any]:
        """Mark trial ``number`` as run by this process; returns the user attributes that say by whom."""
        if self.postgresql:
            self.advisory("pg_advisory_lock", number)
            self.held.add(number)
        return self.owner()

    def release(self, number: int) -> None:
        if self.postgresql:
            self.advisory("pg_advisory_unlock", number)
            self.held.discard(number)

    def alive(self, trial: FrozenTrial) -> bool:
        """Whether the process running ``trial`` still runs (call under the counting lock). PostgreSQL: its lock is
        still held; elsewhere: its process id runs on this machine (trials of other machines count as alive)."""
        if self.postgresql:
            if trial.number in self.held:
                return True
            (free,) = self.advisory("pg_try_advisory_lock", trial.number).one()
            if free:
                self.advisory("pg_advisory_unlock", trial.number)
            return not free
        attrs = trial.user_attrs
        return attrs.get("host") != socket.gethostname() or process_alive(int(attrs.get("pid", 0)))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
