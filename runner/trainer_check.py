"""Whether the trainer that `submit` and `attach` launch can run here, asked without importing it.

The runner installs alone (`pip install resumable-runner`: status, logs, ls, cancel, validate);
the supervisor starts the trainer as `python -m trainer` with this same interpreter, which needs
the `trainer` extra. `trainer_missing()` says so in one line before a command takes a lease,
rather than after the job has been marked running. It only looks modules up
(`importlib.util.find_spec` on top-level names imports nothing), so it costs no torch import.
"""

from __future__ import annotations

import importlib.util

INSTALL_HINT = "pip install 'resumable-runner[trainer]'"

# The module each distribution of pyproject.toml's `trainer` extra provides, and the trainer
# itself; tests/unit/test_trainer_check.py keeps this in step with the extra.
TRAINER_MODULES: dict[str, str] = {
    "trainer": "resumable-runner's trainer package",
    "torch": "torch",
    "torchvision": "torchvision",
    "argus": "pytorch-argus",
    "albumentations": "albumentations",
    "cv2": "opencv-python-headless",
    "SoccerNet": "SoccerNet",
    "numpy": "numpy",
    "scipy": "scipy",
    "tensorboard": "tensorboard",
    "huggingface_hub": "huggingface_hub",
    "safetensors": "safetensors",
}


def missing_trainer_modules() -> list[str]:
    """The trainer's top-level modules this interpreter cannot find, in TRAINER_MODULES' order."""
    missing = []
    for module in TRAINER_MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken package, or one blocked in sys.modules
            found = False
        if not found:
            missing.append(module)
    return missing


def trainer_missing() -> str | None:
    """None when `python -m trainer` can start here; else one line saying what is missing and
    how to install it, for `submit`/`attach` to print before exiting 2."""
    missing = missing_trainer_modules()
    if not missing:
        return None
    names = ", ".join(TRAINER_MODULES[module] for module in missing)
    return f"the trainer is not installed here (missing: {names}): {INSTALL_HINT}"
