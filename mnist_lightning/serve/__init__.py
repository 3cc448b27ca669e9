"""Serve a trained model: a page to draw digits on and a JSON API, in one process tree (LitServe).

See :mod:`mnist_lightning.serve.app` for the API and :mod:`mnist_lightning.commands.serve` (``mnist-serve``) for
the command.
"""
