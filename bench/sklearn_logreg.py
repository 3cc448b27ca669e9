"""scikit-learn's LogisticRegression on MNIST, the accuracy reference for a linear model.

lbfgs on standardized pixels, C=0.1, all 60k training images, run to convergence. Prints one JSON line
with the time of each phase.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402  (imports are part of what is timed)
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

IMPORTED = time.perf_counter()


def read_idx(path: Path, header: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(path.read_bytes(), dtype=np.uint8, offset=header).reshape(shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--C", type=float, default=0.1)
    parser.add_argument(
        "--same-split", action="store_true", help="train on this project's seeded 50k split instead of all 60k"
    )
    args = parser.parse_args()
    raw = Path(args.data_dir) / "MNIST" / "raw"
    x_train = read_idx(raw / "train-images-idx3-ubyte", 16, (-1, 784)).astype(np.float32)
    y_train = read_idx(raw / "train-labels-idx1-ubyte", 8, (-1,))
    x_test = read_idx(raw / "t10k-images-idx3-ubyte", 16, (-1, 784)).astype(np.float32)
    y_test = read_idx(raw / "t10k-labels-idx1-ubyte", 8, (-1,))
    if args.same_split:
        import torch  # the same generator call as MNISTDataModule.setup

        train = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(42))[10_000:].numpy()
        x_train, y_train = x_train[train], y_train[train]
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    loaded = time.perf_counter()
    model = LogisticRegression(C=args.C, max_iter=1000).fit(x_train, y_train)
    fitted = time.perf_counter()
    result = {
        "import_s": IMPORTED - STARTED,
        "load_s": loaded - IMPORTED,
        "fit_s": fitted - loaded,
        "iterations": int(model.n_iter_[0]),
        "train_images": len(y_train),
        "test_acc": float((model.predict(x_test) == y_test).mean()),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
