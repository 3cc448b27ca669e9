"""Serve a trained model: a page to draw digits on and a JSON API, in one process tree (LitServe).

    python -m mnist_lightning.serve --ckpt best|last|PATH [--root DIR] [--host 127.0.0.1] [--port 8000] [--collect DIR]

See :mod:`mnist_lightning.serve.app` for the API and :mod:`mnist_lightning.serve.__main__` for the command.
"""
