"""Score a trained checkpoint on inputs that are not MNIST's test set: the evaluation suites behind
``mnist-evaluate`` (``python -m mnist_lightning.commands.evaluate``), each importable on its own.

- :mod:`.handwriting`: ten real people's hands (Debian's handwriting fonts, :mod:`.fonts`) drawn fourteen ways
  (:mod:`.renderings`, :mod:`.drawing`); the HELD-OUT hands give the honest figure, settings are tuned on the others.
- :mod:`.robustness`: MNIST's test digits transformed like real inputs, through the predict path.
- :mod:`.fidelity`: what the preprocessing does to MNIST's own digits, PNG files, typed digits and photos.

Each suite's ``evaluate`` returns a JSON-able result and its ``tables`` print it (:mod:`.report`).
"""
