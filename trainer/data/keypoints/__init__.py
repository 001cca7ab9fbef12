"""The 57 pitch keypoints and their derivation from SoccerNet line annotations (DESIGN §8).

Lives here: ``table`` (the points from ``keypoints57.tsv``, flip/mirror indices, states),
``geometry`` (line and ellipse fitting, intersections, tangents), ``recipes`` (how each point is
found, parsed from the table against SoccerNet's pitch), ``homography`` (the ground-plane fit and
its refinement) and ``derivation`` (``derive_keypoints`` and the left/right relabelling).

Import the module that holds a name: this file re-exports nothing, so a reader of the table alone
(the model's loss, the camera estimation) loads no fitting code. Pure numpy, OpenCV and SciPy:
must not import torch, nor anything else of ``trainer``.
"""
