"""``python -m mnist_lightning.tune --config configs/search/logreg.yaml``."""

from mnist_lightning.tune.command import main

if __name__ == "__main__":
    main()
