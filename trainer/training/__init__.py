"""One training attempt under the runner contract (DESIGN §4, §8).

Lives here: ``loop`` (the ``Trainer`` and ``run_training``: engines, events, exit codes),
``state`` (what a checkpoint holds for exact resume, RNGs included), ``checkpoint`` (the
background writer, verified loading), ``callbacks`` (resumable early stopping and LR
plateau, progress), ``metrics`` (the epoch loss and validation metrics as argus Metrics) and
``signals`` (stop requests, parent death, out of memory).

Imports ``contract`` (exit codes, file names, manifest, events, the attempt config) and every
other room of the trainer; nothing in the trainer imports this package but ``__main__``.
"""
