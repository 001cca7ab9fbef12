"""The job spec (DESIGN §3): what a person writes in `jobs/*.yaml`.

Every section forbids unknown keys, so a typo is an error that suggests the right key instead of
a silently ignored setting that costs a night of training. `load_spec` is the one way to read a
spec; it turns every problem into a `Problem` naming the field path, the bad value and the fix.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types
import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from contract.config import (MAX_BATCH, MAX_FRAMES, MAX_SEED, CheckpointConfig, InputSize, LoaderConfig, ModelConfig, Rung,
                             Section, TrainConfig)
from runner.ladder import build_ladder
from runner.notify import MAX_ENTRIES, WHAT, entry_problem

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")

# Store protocols and the package each needs; None means built into fsspec.
STORE_PROTOCOLS: dict[str, str | None] = {
    "file": None,
    "memory": None,
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "s3": "s3fs",
}

# Bounds on spec input (issue 10): a spec is a few hundred bytes of hand-written YAML, so
# anything far past these is a mistake or an attack, refused before it costs memory or time.
MAX_SPEC_BYTES = 1 << 20  # 1 MiB, checked before the file is read
MAX_DEPTH = 32  # nesting of mappings and lists; a job spec needs 4
MAX_NODES = 10_000  # YAML values (scalars, lists, mappings); a job spec has about 100
MAX_PROBLEMS = 20  # problems listed; the rest are counted
EXCERPT_CHARS = 80  # the most of a bad value any message repeats
START_SKEW = timedelta(minutes=5)  # clock skew allowed for a session.start "now"


def _cut(text: str, limit: int = EXCERPT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(value: Any) -> str:
    """The value as `repr` shows it, cut to an excerpt: messages never repeat more of the input."""
    return _cut(repr(value))


class Problem(BaseModel):
    """One thing wrong with a spec, phrased for the person who wrote it."""

    path: str
    message: str

    @field_validator("path", "message")
    @classmethod
    def _bounded(cls, value: str, info: Any) -> str:
        """A last guard: no problem line repeats more than a short excerpt of the input."""
        return _cut(value, 120 if info.field_name == "path" else 500)

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
        raise ValueError(f"{what} must be a relative folder name without '..', got {_short(value)}")
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
    frames: int = Field(256, ge=1, le=MAX_FRAMES, description="synthetic: frames rendered for the train split")
    valid_frames: int = Field(64, ge=1, le=MAX_FRAMES, description="synthetic: frames rendered for the valid split")
    seed: int = Field(0, ge=0, le=MAX_SEED)


class TrainSpec(TrainConfig):
    """The trainer's own section plus the rung to start on; the ladder steps down from there."""

    batch_size: int | None = Field(None, ge=1, le=MAX_BATCH, description="default: oom.batch_sizes[0]")
    input_size: InputSize | None = Field(None, description="[W, H]; default: oom.input_sizes[0]")


class OomSpec(Section):
    batch_sizes: list[Annotated[int, Field(ge=1, le=MAX_BATCH)]] = Field([8, 4, 2], min_length=1, max_length=16)
    input_sizes: list[InputSize] = Field([(960, 540), (720, 405), (640, 360)], min_length=1, max_length=16)
    keep_effective_batch: bool = True
    activation_checkpointing: bool = True


class SyncSpec(Section):
    # The lease lives 3 intervals: under a second it would lapse on any slow store call.
    every_seconds: float = Field(60.0, ge=1, le=3600)


class SessionSpec(Section):
    max_hours: float | None = Field(None, gt=0, le=168, description="none: the session has no limit")
    margin_minutes: float = Field(15.0, ge=0, le=1440)
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
                f"must be 'auto' or an ISO 8601 time like 2026-11-25T08:00:00+00:00, got {_short(value)}"
            ) from None

    @field_validator("start")
    @classmethod
    def _not_in_future(cls, value: Literal["auto"] | datetime) -> Literal["auto"] | datetime:
        """A session cannot have started later than now (a time without a zone is UTC)."""
        if value == "auto":
            return value
        assert isinstance(value, datetime)
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        now = datetime.now(timezone.utc)
        if aware > now + START_SKEW:
            raise ValueError(
                f"{value.isoformat()} is in the future (now is {now.isoformat(timespec='seconds')}); "
                "allowed: 'auto' or a time no later than now (5 minutes of clock skew allowed)"
            )
        return value


class ResourcesSpec(Section):
    gpus: int = Field(1, ge=1, le=64, description="more than 1: one process per GPU under torchrun (DDP); "
                      "with train.device: cpu, that many CPU processes")
    max_restarts: int = Field(3, ge=0, le=100)


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
    notify: list[str] = Field(default_factory=list, description="where messages go: apprise URLs or ${NAME} "
                                                                "references, expanded on the machine that sends")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value) or ".." in value:
            raise ValueError(
                f"{_short(value)} is not a safe job name: use 1-63 characters of a-z, 0-9, '.', '_', '-', "
                "starting with a letter or digit, no '..' (it is the job's key in the store), "
                "e.g. 'hrnet-w48-t4'"
            )
        return value

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        return check_store_url(value)

    @field_validator("notify", mode="before")
    @classmethod
    def _notify(cls, value: Any) -> Any:
        """Every entry checked here, before pydantic's own errors could repeat one: an entry may
        be a pasted secret, so no message quotes it."""
        if value is None:  # `notify:` with nothing under it
            return []
        if not isinstance(value, list):
            raise ValueError(f"must be a list, one entry per line starting with '- ', each {WHAT}")
        if len(value) > MAX_ENTRIES:
            raise ValueError(f"has {len(value)} entries; at most {MAX_ENTRIES} are allowed")
        problems = []
        for index, entry in enumerate(value):
            problem = entry_problem(entry) if isinstance(entry, str) else f"must be text: {WHAT}"
            if problem:
                problems.append(Problem(path=f"notify[{index}]", message=problem))
        if problems:
            raise _CrossFieldError(problems)
        return value

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


# Bucket names the shipped examples use as placeholders (jobs/t4.yaml): never a real store.
PLACEHOLDER_BUCKETS = frozenset({"YOUR-BUCKET", "YOUR_BUCKET"})


def placeholder_problem(url: str) -> str | None:
    """Why `url` is an example's placeholder, not a store; None for any other URL. Not a spec
    error: `submit --store` may replace the spec's store, so `validate` and opening a store ask."""
    if "://" not in url or store_protocol(url) == "file":
        return None
    if url.split("://", 1)[1].split("/", 1)[0].upper() not in PLACEHOLDER_BUCKETS:
        return None
    return (f"{_short(url)} is the example's placeholder: put your bucket's name in the spec's `store` or pass "
            "--store gs://NAME/runs (create a bucket with `gcloud storage buckets create gs://NAME`), or use a "
            "Drive folder such as /content/drive/MyDrive/runs")


def check_store_url(url: str) -> str:
    """Reject stores we cannot write to, naming the package that would make them work.

    Credentials are checked first, in every scheme (`file://user:pw@host/...` too), so that no
    later message echoes a secret back. A plain path (no `://`) is a local folder and may hold
    any character.
    """
    if not url.strip():
        raise ValueError("must not be empty; use a local path like ./runs or gs://bucket/prefix")
    protocol = store_protocol(url)
    if "://" in url:
        location = url.split("://", 1)[1]
        if "@" in location.split("/", 1)[0] or "?" in location:
            raise ValueError(
                "must not carry credentials or options; credentials come from the environment "
                "(Colab auth, ADC, GOOGLE_APPLICATION_CREDENTIALS)"
            )
        if protocol != "file" and ".." in location.split("/"):
            raise ValueError(f"{_short(url)} must not contain '..' segments")

    if protocol not in STORE_PROTOCOLS:
        allowed = ", ".join(f"{p}://" for p in STORE_PROTOCOLS)
        raise ValueError(
            f"{_short(url)} has the protocol {_short(protocol)}, which is not supported; "
            f"use a local path or one of {allowed}"
        )
    package = STORE_PROTOCOLS[protocol]
    if package and importlib.util.find_spec(package) is None:
        extra = " (pip install 'resumable-runner[s3]')" if package == "s3fs" else ""
        raise ValueError(
            f"{_short(url)} needs the package {package}, which is not installed: pip install {package}{extra}"
        )
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
        part = part if isinstance(part, int) else _cut(str(part), 40)
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


_NUMBER_ERRORS = {"finite_number", "greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _allowed_range(loc: tuple[int | str, ...]) -> str:
    """The documented range of the number field at `loc`, e.g. 'a finite number >= 1 and <= 3600'."""
    model: Any = JobSpec
    field: FieldInfo | None = None
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return ""
        field = model.model_fields.get(str(part))
        if field is None:
            return ""
        model = field.annotation
    bounds = []
    for rule in field.metadata if field else []:
        for kind, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if isinstance(rule, getattr(annotated_types, kind.capitalize())):
                bounds.append(f"{symbol} {getattr(rule, kind):g}")
    return "a finite number " + " and ".join(bounds) if bounds else ""


def _problems_from(error: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    items = error.errors()
    for item in items:
        if len(problems) >= MAX_PROBLEMS:
            problems.append(Problem(path="", message=f"... and more: {len(items)} problems in all; fix these first"))
            break
        loc = tuple(item["loc"])
        cause = item.get("ctx", {}).get("error")
        if isinstance(cause, _CrossFieldError):
            problems.extend(cause.problems)
            continue
        if item["type"] == "extra_forbidden":
            key = str(loc[-1])
            allowed = _field_names(loc[:-1])
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6) if len(key) < 100 else []
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(Problem(
                path=_format_path(loc),
                message=f"unknown key {_short(key)}; {hint}allowed keys: {', '.join(allowed)}",
            ))
            continue
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "is required"
        elif item["type"] != "value_error":
            message = f"{_short(item['input'])} is not allowed: {message}"
            allowed_range = _allowed_range(loc) if item["type"] in _NUMBER_ERRORS else ""
            if allowed_range:
                message += f"; allowed: {allowed_range}"
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


def _too_large(size: int) -> str:
    return f"is {size:,} bytes; a job spec may be at most {MAX_SPEC_BYTES:,} bytes (1 MiB)"


def load_spec(path: str | Path) -> JobSpec:
    """Read and validate a spec file; the only way the runner turns YAML into a JobSpec."""
    path = Path(path)
    source = _cut(str(path), 200)
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:  # refused before it is read
            raise SpecError([Problem(path="", message=f"{source} {_too_large(size)}")], source)
        with path.open("rb") as file:
            data = file.read(MAX_SPEC_BYTES + 1)  # a file that grows, or a device, is bounded too
    except OSError as error:
        raise SpecError([Problem(path="", message=f"cannot read {source}: {error.strerror}")], source) from None
    return parse_spec_bytes(data, source)


def parse_spec_bytes(data: bytes, source: str = "spec") -> JobSpec:
    """Validate spec YAML as read from a file or the store: at most 1 MiB of UTF-8 text."""
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError([Problem(path="", message=f"{source} {_too_large(len(data))}")], source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpecError([Problem(
            path="",
            message=f"{source} is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); "
                    "save it as UTF-8",
        )], source) from None
    return parse_spec_text(text, source)


# libyaml when built in: the pure-Python parser takes tens of seconds on a 1 MiB spec.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Refused(Exception):
    """YAML that parses but that a job spec must not contain."""

    def __init__(self, message: str, mark: Any = None) -> None:
        self.mark = mark
        super().__init__(message)


def _check_events(text: str) -> None:
    """Refuse aliases (a 300-byte 'billion laughs' expands to gigabytes), deep nesting and
    huge documents from the event stream, before anything is built from it."""
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                f"YAML aliases (*{_cut(str(event.anchor), 40)}) are not allowed in a job spec; "
                "write the value out in full",
                event.start_mark,
            )
        if isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            nodes += 1
            if nodes > MAX_NODES:
                raise _Refused(f"more than {MAX_NODES:,} YAML values; a job spec has about 100", event.start_mark)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep; a job spec needs 4", event.start_mark)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def parse_spec_text(text: str, source: str = "spec") -> JobSpec:
    """Validate spec YAML text, e.g. the copy kept in the store."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_SPEC_BYTES:
        raise SpecError([Problem(path="", message=f"{source} {_too_large(size)}")], source)
    try:
        _check_events(text)
        data = yaml.load(text, Loader=_Loader)
    except _Refused as error:
        mark = error.mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError([Problem(path="", message=f"{where}{error}")], source) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpecError([Problem(path="", message=f"not valid YAML{where}: {_cut(str(problem), 200)}")], source) from None
    except (ValueError, OverflowError, RecursionError) as error:  # e.g. a 5000-digit int, 2026-02-30
        message = _cut(str(error).split(";")[0] or type(error).__name__, 200)
        raise SpecError([Problem(path="", message=f"not a valid YAML value: {message}")], source) from None
    return parse_spec(data, source)


def same_spec(stored: bytes, spec: JobSpec) -> bool:
    """Whether a stored spec is this job's. Compared resolved, not as text: a field added since
    (with its default) or another key order is the same job; a stored spec that no longer
    parses is not."""
    try:
        return parse_spec_bytes(stored) == spec
    except SpecError:
        return False


def dump_spec(spec: JobSpec) -> str:
    """The resolved spec as YAML, every default written out, for printing and for the store."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, default_flow_style=None)
