"""The Optuna search over train.py options that ``mnist-tune`` runs (:mod:`mnist_lightning.commands.tune`).

Every trial is an ordinary ``train.py fit`` run. The study lives in ``<root>/search/<study>/study.db`` (SQLite)
unless ``--storage`` names another database; running the same command again continues it.

- ``space``: the search file, read and checked before anything is written
- ``storage``: the database, its masked URL, opening the study once, Optuna's heartbeat
- ``runner``: the trials, in Optuna's loop
- ``report``: progress lines, the table of the best trials, ``best.yaml``, the plots
"""

from mnist_lightning.tune.runner import Tuner
from mnist_lightning.tune.space import Search, load_search

__all__ = ["Search", "Tuner", "load_search"]
