"""How good predicted keypoints are: decoding, keypoint metrics, cameras and the challenge score.

Lives here: ``heatmaps`` (keypoints from heatmaps), ``keypoint_metrics`` (L2, PCK, precision,
recall), ``camera`` (a SoccerNet camera from keypoints), ``challenge`` (the EvalAI metric:
completeness × JaC@5), ``scoring`` (folders of cameras against annotations; cameras for a
keypoints file) and ``pool`` (per-frame work spread over processes).

Must not import ``trainer.model`` or ``trainer.training`` (training uses this, not the reverse),
nor torch: it works on arrays, so scoring a folder needs no training stack. It reads the keypoint
table from ``trainer.data.keypoints``.
"""
