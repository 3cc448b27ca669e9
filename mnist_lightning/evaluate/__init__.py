"""Score a trained checkpoint on inputs that are not MNIST's test set: the evaluation suites behind
``mnist-evaluate`` (``python -m mnist_lightning.commands.evaluate``), each importable on its own.

- :mod:`.handwriting`: ten real people's hands (Debian's handwriting fonts, :mod:`.fonts`) and sixteen pen-stroke
  hands (:mod:`.strokes`, :mod:`.stroke_hands`) drawn seventeen ways (:mod:`.renderings`, :mod:`.drawing`); the
  HELD-OUT hands give the honest figure, settings are tuned on the TUNING ones, the SEALED ones are kept for last.
- :mod:`.not_digits`: letters, scribbles and noise (:mod:`.not_digit_images`): how often a model says so.
- :mod:`.robustness`: MNIST's test digits transformed like real inputs, through the predict path.
- :mod:`.fidelity`: what the preprocessing does to MNIST's own digits, PNG files, typed digits and photos.

Each suite's ``evaluate`` returns a JSON-able result and its ``tables`` print it (:mod:`.report`).
"""
