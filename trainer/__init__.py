"""The HRNet keypoint trainer for SoccerNet camera calibration (DESIGN §2, §8).

Lives here: ``__main__`` (every ``python -m trainer`` subcommand), ``training/`` (one attempt
under the runner contract), ``model/`` (network and loss), ``data/`` (SoccerNet frames, keypoints,
loaders, synthetic frames), ``evaluation/`` (keypoints from heatmaps, metrics, cameras, the
challenge score), ``inference/`` (the weights file, ``predict`` on images, folders and videos)
and ``parallel`` (per-frame work over a process pool, for the data and evaluation rooms alike).

Imports ``contract`` for all it shares with the supervisor: exit codes, work-dir file names, the
checkpoint manifest, events and the attempt config. Must not import ``runner``: the trainer never
sees the store, and the supervisor meets it only through files, the exit code and signals.
"""
