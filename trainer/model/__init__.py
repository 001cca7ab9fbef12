"""The keypoint model: HRNetV2 backbone, stride-2 heatmap head, loss, and the argus model.

Lives here: ``hrnet`` (the backbone, with activation checkpointing of its stages), ``heads``
(the network: backbone + head, pretrained loading), ``loss`` (Gaussian targets built on the device,
masked MSE) and ``metamodel`` (argus model: Adam, AMP, gradient accumulation, injected faults).

Must not import ``trainer.training`` or ``trainer.evaluation``; from ``trainer.data`` only the
keypoint table (how many points, which states).
"""
