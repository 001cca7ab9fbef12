"""How good predicted keypoints are: decoding, keypoint metrics, cameras and the challenge score.

Lives here: ``heatmaps`` (keypoints from heatmaps), ``keypoint_metrics`` (L2, PCK, precision,
recall), ``camera`` (a SoccerNet camera from keypoints), ``challenge`` (the EvalAI metric:
completeness × JaC@5) and ``scoring`` (folders of cameras against annotations; cameras for a
keypoints file). Per-frame work is spread over processes by ``trainer.parallel``.

Must not import ``trainer.model`` or ``trainer.training`` (training uses this, not the reverse),
nor torch: it works on arrays, so scoring a folder needs no training stack. It reads the keypoint
table from ``trainer.data.keypoints``.
"""
