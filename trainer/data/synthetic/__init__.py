"""Synthetic SoccerNet-format frames rendered from random broadcast cameras (DESIGN §8).

The demo job and the tests must train and check on data of the real format without a download, so
this renders frames the way SoccerNet stores them: ``NNNNN.jpg`` plus ``NNNNN.json`` (line class →
clicked points normalised by (width − 1, height − 1)). The true camera is written beside each frame
as ``NNNNN.camera.json`` (SoccerNet's ``Camera.to_json_parameters`` form), which gives exact ground
truth for every keypoint, because all 57 are fixed pitch points.

Lives here: ``camera`` (random broadcast cameras and their matrices), ``pitch`` (the pitch as 3D
lines and arcs), ``annotate`` (the clicks a person would make), ``render`` (the picture) and
``generate`` (frames to files). Must not import torch, ``trainer.model``, ``trainer.training`` or
``trainer.evaluation``: the supervisor's ``prepare`` step renders data without the training stack.
"""
