"""MNIST handwritten-digit classification with PyTorch Lightning: train, watch, load, predict."""
