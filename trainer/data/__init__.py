"""The trainer's data: SoccerNet frames in, batches of images and keypoints out (DESIGN §8).

Lives here: ``soccernet`` (the split-folder reader), ``download`` (fetching and unpacking the
SoccerNet splits), ``keypoints/`` (the 57 points and their derivation from line annotations),
``cache`` (keypoints derived once per dataset), ``transforms`` (resize, flip, colour, noise),
``loader`` (the dataset, the resumable sampler, the DataLoader), ``prepare`` (a job's data made
ready) and ``synthetic/`` (SoccerNet-format frames rendered offline).

Must not import ``trainer.model``, ``trainer.training`` or ``trainer.evaluation``: data flows from
here to them, never back. Only ``loader`` and ``transforms`` (through albumentations) load torch,
so ``python -m trainer synth``, ``keypoints`` and ``prepare`` run without it.
"""
