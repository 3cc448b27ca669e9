"""``python -m mnist_lightning.tune --config configs/search/logreg.yaml``: an Optuna search over train.py options.

Every trial is an ordinary ``train.py fit`` run. The study lives in ``<root>/search/<study>/study.db`` (SQLite)
unless ``--storage`` names another database; running the same command again continues it. Options this package
does not know are passed to every trial (e.g. ``--data.data_dir``).

- ``space``: the search file, read and checked before anything is written
- ``storage``: the database, its masked URL, creating the study once, the counting lock, workers' liveness
- ``runner``: the trials
- ``report``: progress lines, the table of the best trials, ``best.yaml``, the plots
- ``command``: the command's options, its workers and its one-line errors
"""

from mnist_lightning.tune.command import main
from mnist_lightning.tune.runner import Tuner
from mnist_lightning.tune.space import Search, load_search

__all__ = ["Search", "Tuner", "load_search", "main"]
