"""The keypoint model: HRNetV2 backbone, stride-2 heatmap head, loss, and the argus model.

Lives here: ``hrnet`` (the backbone, with activation checkpointing of its stages), ``heads``
(the network: backbone + head), ``pretrained`` (ImageNet backbone weights by name from the Hugging
Face Hub, or from a file), ``loss`` (Gaussian targets built on the device, masked MSE) and
``metamodel`` (argus model: Adam, AMP, gradient accumulation, injected faults; the input scaling
and softmax that inference shares).

Must not import ``trainer.training`` or ``trainer.evaluation``; from ``trainer.data`` only the
keypoint table (how many points, which states).
"""
