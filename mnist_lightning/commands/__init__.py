"""The commands a user runs, together: each module is one command with ``main(argv) -> int`` that raises the
project's errors, and :func:`.runner.run` turns those into one line and an exit code by one rule."""
