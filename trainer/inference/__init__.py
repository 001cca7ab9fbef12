"""Using trained weights: ``python -m trainer predict`` on images, folders and videos.

Lives here: ``weights`` (the weights file: state dict + metadata; written by training, read
here), ``frames`` (the inputs: images, folders, videos read every Nth frame, with skipped
inputs named), ``outputs`` (per-frame keypoints and camera files, and the camera step),
``overlay`` (projected pitch lines and keypoints drawn on a frame) and ``predict`` (batched
inference with the preprocessing validation uses, then cameras, files and a summary).

Must not import ``trainer.training`` (training writes weights through here, not the reverse).
``outputs`` and ``overlay`` load no torch: the camera step runs in pool workers, which import the
module of the function they run.
"""
