"""Data preparation for a job: the step the seed guide did by hand (download, unzip, link).

`python -m trainer prepare` runs it for the supervisor, which never imports the data stack
itself. Synthetic data is rendered into the root when absent; SoccerNet data is downloaded
and unpacked when incomplete; a `path` root must already hold the split folders.
"""

from __future__ import annotations

from pathlib import Path

from trainer.data.download import EXPECTED_FRAMES, ensure_soccernet
from trainer.data.synthetic.generate import generate


class DataNotFound(RuntimeError):
    """A `source: path` root without the split folders the spec names."""


def prepare(source: str, root: Path, train_split: str, valid_split: str, *,
            frames: int = 0, valid_frames: int = 0, seed: int = 0) -> dict[str, Path]:
    """Folders of the train and valid splits, ready to read."""
    root = Path(root)
    if source == "synthetic":
        dirs = {"train": root / train_split, "valid": root / valid_split}
        generate(dirs["train"], frames, seed)
        generate(dirs["valid"], valid_frames, seed, start_index=frames)  # frames train never saw
        return dirs
    if source == "soccernet":
        unknown = [s for s in (train_split, valid_split) if s not in EXPECTED_FRAMES]
        if unknown:
            raise ValueError(f"SoccerNet has no split {unknown[0]!r}; data.splits must name {', '.join(EXPECTED_FRAMES)}")
        found = ensure_soccernet(root, splits=(train_split, valid_split))
        return {"train": found[train_split], "valid": found[valid_split]}
    if source == "path":
        dirs = {"train": root / train_split, "valid": root / valid_split}
        missing = [str(d) for d in dirs.values() if not d.is_dir()]
        if missing:
            raise DataNotFound(
                f"data.source is 'path' but {', '.join(missing)} does not exist; point data.root at the "
                "folder that holds the split folders (data.splits), or use source: soccernet to download"
            )
        return dirs
    raise ValueError(f"unknown data source {source!r}")
