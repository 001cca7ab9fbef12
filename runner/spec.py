"""The job spec (DESIGN §3): what a person writes in `jobs/*.yaml`.

Every section forbids unknown keys, so a typo is an error that suggests the right key instead of
a silently ignored setting that costs a night of training. `load_spec` is the one way to read a
spec; it turns every problem into a `Problem` naming the field path, the bad value and the fix.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from contract.config import CheckpointConfig, InputSize, LoaderConfig, ModelConfig, Rung, Section, TrainConfig
from runner.ladder import build_ladder

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")

# Store protocols and the package each needs; None means built into fsspec.
STORE_PROTOCOLS: dict[str, str | None] = {
    "file": None,
    "memory": None,
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "s3": "s3fs",
}



class Problem(BaseModel):
    """One thing wrong with a spec, phrased for the person who wrote it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(Exception):
    """A spec that cannot be run; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem], source: str = "spec") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} is invalid ({len(problems)} problem(s)):\n{lines}")


class _CrossFieldError(ValueError):
    """Raised from the model validator so cross-field problems keep their own field paths."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def _relative_name(value: str, what: str) -> str:
    """A folder name under a root: never absolute, never climbing out with '..'."""
    parts = Path(value).parts
    if not value or Path(value).is_absolute() or ".." in parts:
        raise ValueError(f"{what} must be a relative folder name without '..', got {value!r}")
    return value


class SplitsSpec(Section):
    """Folder names of the splits under the data root."""

    train: str = "train"
    valid: str = "valid"

    @field_validator("train", "valid")
    @classmethod
    def _safe(cls, value: str) -> str:
        return _relative_name(value, "a split")


class DataSpec(LoaderConfig):
    """Where the data comes from (the supervisor prepares it) and how the trainer loads it."""

    source: Literal["soccernet", "synthetic", "path"] = "soccernet"
    root: str = "./data"
    splits: SplitsSpec = SplitsSpec()
    frames: int = Field(256, ge=1, description="synthetic: frames rendered for the train split")
    valid_frames: int = Field(64, ge=1, description="synthetic: frames rendered for the valid split")
    seed: int = 0


class TrainSpec(TrainConfig):
    """The trainer's own section plus the rung to start on; the ladder steps down from there."""

    batch_size: int | None = Field(None, ge=1, description="default: oom.batch_sizes[0]")
    input_size: InputSize | None = Field(None, description="[W, H]; default: oom.input_sizes[0]")


class OomSpec(Section):
    batch_sizes: list[Annotated[int, Field(ge=1)]] = Field([8, 4, 2], min_length=1)
    input_sizes: list[InputSize] = Field([(960, 540), (720, 405), (640, 360)], min_length=1)
    keep_effective_batch: bool = True
    activation_checkpointing: bool = True


class SyncSpec(Section):
    every_seconds: float = Field(60.0, gt=0)


class SessionSpec(Section):
    max_hours: float | None = Field(None, gt=0, description="none: the session has no limit")
    margin_minutes: float = Field(15.0, ge=0)
    start: Literal["auto"] | datetime = "auto"

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> Any:
        if value == "auto" or isinstance(value, datetime):
            return value
        try:
            return datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError(
                f"must be 'auto' or an ISO 8601 time like 2026-11-25T08:00:00+00:00, got {value!r}"
            ) from None


class ResourcesSpec(Section):
    gpus: int = Field(1, ge=1)
    max_restarts: int = Field(3, ge=0)

    @field_validator("gpus")
    @classmethod
    def _one_gpu(cls, value: int) -> int:
        if value > 1:
            raise ValueError(
                f"{value} GPUs are not supported yet: one trainer runs on one GPU; set resources.gpus: 1 "
                "(multi-GPU training with torchrun is planned, DESIGN §9)"
            )
        return value


class JobSpec(Section):
    """A whole job. Build it with `load_spec`, which formats errors for people."""

    name: str
    store: str = "./runs"
    data: DataSpec = DataSpec()
    model: ModelConfig = ModelConfig()
    train: TrainSpec = TrainSpec()
    oom: OomSpec = OomSpec()
    checkpoint: CheckpointConfig = CheckpointConfig()
    sync: SyncSpec = SyncSpec()
    session: SessionSpec = SessionSpec()
    resources: ResourcesSpec = ResourcesSpec()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value) or ".." in value:
            raise ValueError(
                f"{value!r} is not a safe job name: use 1-63 characters of a-z, 0-9, '.', '_', '-', "
                "starting with a letter or digit, no '..' (it is the job's key in the store), "
                "e.g. 'hrnet-w48-t4'"
            )
        return value

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        return check_store_url(value)

    @model_validator(mode="after")
    def _cross_fields(self) -> JobSpec:
        problems = _cross_field_problems(self)
        if problems:
            raise _CrossFieldError(problems)
        if self.train.batch_size is None:
            self.train.batch_size = self.oom.batch_sizes[0]
        if self.train.input_size is None:
            self.train.input_size = self.oom.input_sizes[0]
        return self

    def ladder(self) -> list[Rung]:
        """The OOM rungs this spec implies, starting at the train settings."""
        assert self.train.batch_size is not None and self.train.input_size is not None
        return build_ladder(
            self.train.batch_size,
            self.train.input_size,
            self.oom.batch_sizes,
            self.oom.input_sizes,
            self.oom.activation_checkpointing,
            self.oom.keep_effective_batch,
        )


def store_protocol(url: str) -> str:
    """The fsspec protocol of a store URL; a plain path (Drive mount, ./runs) is 'file'."""
    if "://" not in url:
        return "file"
    return url.split("://", 1)[0].lower()


def check_store_url(url: str) -> str:
    """Reject stores we cannot write to, naming the package that would make them work.

    Credentials are checked first so that no later message echoes a secret back.
    """
    if not url.strip():
        raise ValueError("must not be empty; use a local path like ./runs or gs://bucket/prefix")
    protocol = store_protocol(url)
    if protocol != "file":
        location = url.split("://", 1)[1]
        if "@" in location.split("/", 1)[0] or "?" in location:
            raise ValueError(
                "must not carry credentials or options; credentials come from the environment "
                "(Colab auth, ADC, GOOGLE_APPLICATION_CREDENTIALS)"
            )
        if ".." in location.split("/"):
            raise ValueError(f"{url!r} must not contain '..' segments")
    if protocol not in STORE_PROTOCOLS:
        allowed = ", ".join(f"{p}://" for p in STORE_PROTOCOLS)
        raise ValueError(
            f"{url!r} has the protocol {protocol!r}, which is not supported; use a local path or one of {allowed}"
        )
    package = STORE_PROTOCOLS[protocol]
    if package and importlib.util.find_spec(package) is None:
        extra = " (pip install 'resumable-runner[s3]')" if package == "s3fs" else ""
        raise ValueError(f"{url!r} needs the package {package}, which is not installed: pip install {package}{extra}")
    return url


def _cross_field_problems(spec: JobSpec) -> list[Problem]:
    """Rules that involve more than one field; each problem names the field to change."""
    problems: list[Problem] = []
    oom, train = spec.oom, spec.train

    batches = oom.batch_sizes
    if any(a <= b for a, b in zip(batches, batches[1:])):
        problems.append(Problem(
            path="oom.batch_sizes",
            message=f"{batches} must be sorted large to small without repeats, e.g. "
                    f"{sorted(set(batches), reverse=True)}",
        ))
    sizes = [tuple(s) for s in oom.input_sizes]
    if any(a[0] <= b[0] or a[1] <= b[1] for a, b in zip(sizes, sizes[1:])):
        problems.append(Problem(
            path="oom.input_sizes",
            message=f"{[list(s) for s in sizes]} must be sorted large to small: each [W, H] smaller "
                    "than the one before on both sides",
        ))
    if train.batch_size is not None and train.batch_size not in batches:
        problems.append(Problem(
            path="train.batch_size",
            message=f"{train.batch_size} is not on the OOM ladder oom.batch_sizes {batches}; "
                    f"use one of them or add {train.batch_size} to oom.batch_sizes",
        ))
    if train.input_size is not None and tuple(train.input_size) not in sizes:
        problems.append(Problem(
            path="train.input_size",
            message=f"{list(train.input_size)} is not on the OOM ladder oom.input_sizes "
                    f"{[list(s) for s in sizes]}; use one of them or add it to oom.input_sizes",
        ))
    start = train.batch_size if train.batch_size is not None else batches[0]
    if oom.keep_effective_batch and start in batches:
        uneven = [b for b in batches if b <= start and start % b]
        if uneven:
            problems.append(Problem(
                path="oom.batch_sizes",
                message=f"{uneven} do not divide the starting batch size {start}, so gradient "
                        "accumulation cannot keep the effective batch; use divisors of "
                        f"{start} or set oom.keep_effective_batch: false",
            ))
    session = spec.session
    if session.max_hours is not None and session.margin_minutes >= session.max_hours * 60:
        problems.append(Problem(
            path="session.margin_minutes",
            message=f"{session.margin_minutes} leaves no training time in a session of "
                    f"{session.max_hours} h; use fewer minutes than {session.max_hours * 60:g}",
        ))
    return problems


def _field_names(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed in the section at `loc`, for suggesting the closest one to a typo."""
    model: type[BaseModel] = JobSpec
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _format_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _problems_from(error: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    for item in error.errors():
        loc = tuple(item["loc"])
        cause = item.get("ctx", {}).get("error")
        if isinstance(cause, _CrossFieldError):
            problems.extend(cause.problems)
            continue
        if item["type"] == "extra_forbidden":
            key = str(loc[-1])
            allowed = _field_names(loc[:-1])
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(Problem(
                path=_format_path(loc),
                message=f"unknown key {key!r}; {hint}allowed keys: {', '.join(allowed)}",
            ))
            continue
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "is required"
        elif item["type"] != "value_error":
            message = f"{item['input']!r} is not allowed: {message}"
        problems.append(Problem(path=_format_path(loc), message=message))
    return problems


def parse_spec(data: Any, source: str = "spec") -> JobSpec:
    """Validate already-parsed YAML; raises SpecError listing every problem."""
    if not isinstance(data, dict):
        raise SpecError([Problem(path="", message=f"expected a mapping of sections, got {type(data).__name__}")], source)
    try:
        return JobSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(_problems_from(error), source) from None


def load_spec(path: str | Path) -> JobSpec:
    """Read and validate a spec file; the only way the runner turns YAML into a JobSpec."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise SpecError([Problem(path="", message=f"cannot read {path}: {error.strerror}")], str(path)) from None
    return parse_spec_text(text, str(path))


def parse_spec_text(text: str, source: str = "spec") -> JobSpec:
    """Validate spec YAML text, e.g. the copy kept in the store."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError([Problem(path="", message=f"not valid YAML{where}: {getattr(error, 'problem', error)}")], source) from None
    return parse_spec(data, source)


def same_spec(stored: bytes, spec: JobSpec) -> bool:
    """Whether a stored spec is this job's. Compared resolved, not as text: a field added since
    (with its default) or another key order is the same job; a stored spec that no longer
    parses is not."""
    try:
        return parse_spec_text(stored.decode(errors="replace")) == spec
    except SpecError:
        return False


def dump_spec(spec: JobSpec) -> str:
    """The resolved spec as YAML, every default written out, for printing and for the store."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, default_flow_style=None)
