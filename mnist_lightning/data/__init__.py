"""MNIST-style data, one concept per module, flowing one way:

- ``idx``: where the raw IDX files live, decoding and verifying them;
- ``download``: fetching missing files from the published mirrors;
- ``loading``: the seeded, resumable batch sampler and whole-batch tensor dataset;
- ``augment``: batched, seeded augmentation on the training device;
- ``extra``: extra labelled folders (corrections) read and preprocessed for the training split;
- ``datamodule``: ``MNISTDataModule``, which puts them together for Lightning.
"""

from mnist_lightning.data.datamodule import MNISTDataModule

__all__ = ["MNISTDataModule"]
