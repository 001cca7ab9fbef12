"""ImageNet-pretrained backbone weights: fetched by name or read from a file, mapped onto ours.

``model.pretrained: imagenet`` takes the weights timm publishes for the arch on the Hugging Face
Hub (``timm/<arch>.<tag>``, the tag timm itself loads by default), cached by huggingface_hub
(``HF_HOME``), so a second run needs no network. They are read from safetensors, which holds
only tensors: a downloaded file is data, never code. timm is not needed at run time: its HRNet
uses the official module names, which ours follow (``conv1``, ``layer1``, ``transition1``,
``stage2.0.branches...``), so the mapping is by name; what timm adds on top of the four branches
for ImageNet classification (``incre_modules``, ``downsamp_modules``, ``final_layer``,
``classifier``) is set aside. Any other value of ``model.pretrained`` is a local file: a state
dict saved by torch (read with ``weights_only=True``) or a ``.safetensors`` file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from contract.config import PRETRAINED_IMAGENET

log = logging.getLogger(__name__)

IMAGENET_WEIGHTS: dict[str, str] = {
    "hrnet_w18_small": "timm/hrnet_w18_small.gluon_in1k",
    "hrnet_w18": "timm/hrnet_w18.ms_aug_in1k",
    "hrnet_w32": "timm/hrnet_w32.ms_in1k",
    "hrnet_w48": "timm/hrnet_w48.ms_in1k",
}
"""Hub repository per arch: timm's default pretrained tag (``timm.models.get_pretrained_cfg(arch)
.hf_hub_id``); tests/unit/test_pretrained.py keeps the two in step."""
HUB_FILE = "model.safetensors"

CLASSIFIER_PREFIXES = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")
"""timm's ImageNet head on top of the backbone: not ours, set aside rather than called unexpected."""
_WRAPPER_PREFIXES = ("module.", "backbone.", "model.")
"""What DataParallel, our KeypointNet or a training framework put before the backbone's names."""
_COUNTER_SUFFIX = ".num_batches_tracked"
"""BatchNorm's step counter: read only with momentum None (we use 0.1), and often left out of
published files, so its absence is not reported as a missing tensor."""


class PretrainedUnavailable(RuntimeError):
    """The pretrained weights cannot be had (no network, no such file); the message says what to do."""


@dataclass
class LoadReport:
    """What a pretrained state dict did and did not provide for the backbone; logged, never fatal."""

    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    classifier: int = 0

    def describe(self) -> str:
        line = (f"{self.loaded} tensors loaded, {len(self.missing)} missing, {len(self.mismatched)} mismatched, "
                f"{len(self.unexpected)} unexpected, {self.classifier} of the ImageNet classifier set aside")
        for name, keys in (("missing", self.missing), ("mismatched", self.mismatched)):
            if keys:
                line += f"; {name}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
        return line


def backbone_key(key: str) -> str:
    """A source key in our backbone's naming: wrapper prefixes removed."""
    for prefix in _WRAPPER_PREFIXES:
        key = key.removeprefix(prefix)
    return key


def load_backbone(backbone: nn.Module, state: Mapping[str, Tensor]) -> LoadReport:
    """Copy every tensor of ``state`` that fits ``backbone`` by name and shape; report the rest."""
    own = backbone.state_dict()
    report = LoadReport()
    usable: dict[str, Tensor] = {}
    for source_key, value in state.items():
        key = backbone_key(source_key)
        if key.startswith(CLASSIFIER_PREFIXES):
            report.classifier += 1
        elif key not in own:
            report.unexpected.append(key)
        elif own[key].shape != value.shape:
            report.mismatched.append(key)
        else:
            usable[key] = value
    report.missing = [k for k in own if k not in usable and k not in report.mismatched
                      and not k.endswith(_COUNTER_SUFFIX)]
    backbone.load_state_dict(usable, strict=False)
    report.loaded = len(usable)
    return report


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Tensors of a local weights file: safetensors by its suffix, else torch with ``weights_only``.

    A checkpoint that nests its weights under ``state_dict`` or ``model`` (the official HRNet
    files, training frameworks) is unwrapped.
    """
    if not path.is_file():
        raise PretrainedUnavailable(f"model.pretrained {path} is not a file; give a local weights file or "
                                    f"{PRETRAINED_IMAGENET!r}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch and safetensors raise several types for a bad file
        raise PretrainedUnavailable(f"model.pretrained {path} cannot be read as weights: "
                                    f"{type(error).__name__}: {error}") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise PretrainedUnavailable(f"model.pretrained {path} holds {type(state).__name__}, not a state dict")
    return state


@contextmanager
def _hub_quiet() -> Iterator[None]:
    """huggingface_hub logs each retry of an unreachable Hub; the one error line after them says it all."""
    hub = logging.getLogger("huggingface_hub")
    level = hub.level
    hub.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub.setLevel(level)


def imagenet_file(arch: str) -> Path:
    """The arch's ImageNet weights on this machine: from the Hugging Face cache, else downloaded into it.

    A cached file is used without asking the Hub anything, so a run that found it once needs no
    network again, and always gets the same bytes.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo = IMAGENET_WEIGHTS[arch]
    try:
        return Path(hf_hub_download(repo, HUB_FILE, local_files_only=True))
    except LocalEntryNotFoundError:
        log.info("fetching the ImageNet weights of %s from the Hugging Face Hub (%s)", arch, repo)
    try:
        with _hub_quiet():
            return Path(hf_hub_download(repo, HUB_FILE))
    except Exception as error:  # offline, DNS, HTTP, missing repo: huggingface_hub has a type for each
        if isinstance(error, LocalEntryNotFoundError):  # what offline mode and a failed connection both raise
            reason = "not in the Hugging Face cache, and the Hub cannot be reached"
        else:
            reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        raise PretrainedUnavailable(
            f"model.pretrained: {PRETRAINED_IMAGENET} needs the ImageNet weights of {arch} ({repo}/{HUB_FILE} on "
            f"the Hugging Face Hub), which cannot be fetched here ({reason}); fetch them once where the Hub is "
            f"reachable (`hf download {repo} {HUB_FILE}`) and copy that machine's Hugging Face cache (HF_HOME) "
            f"here, or give a local file"
        ) from None


def load_pretrained(backbone: nn.Module, arch: str, pretrained: str) -> LoadReport:
    """Load ``pretrained`` (``imagenet`` or a local file) into ``backbone``; one log line says what loaded."""
    if pretrained == PRETRAINED_IMAGENET:
        path = imagenet_file(arch)
        source = f"{PRETRAINED_IMAGENET} ({IMAGENET_WEIGHTS[arch]})"
    else:
        path = Path(pretrained).expanduser()
        source = str(path)
    report = load_backbone(backbone, read_state_dict(path))
    level = logging.WARNING if report.missing or report.mismatched or not report.loaded else logging.INFO
    log.log(level, "pretrained backbone %s: %s", source, report.describe())
    return report
