"""The event stream, typed: one class per event type (docs/events.md, schema version 1).

Every event has ``v`` (schema version), ``ts`` (Unix time), ``type`` (the JSON tag), ``worker``
and ``job``. The classes are ``msgspec`` structs: frozen, slotted, cheap to pickle across a pipe
or through Ray, encoded to the same JSON as always, and decoded from untrusted JSON with every
field checked (``decode_event`` / ``parse_event`` return None for what is not a valid event).

A field typed ``X | UnsetType`` is written only on some events of its type (e.g. ``pid`` on the
``worker_state`` events a worker sends, not on those the supervisor sends); ``UNSET`` is falsy.
A field typed ``X | None`` is always written, as ``null`` when there is no value.
"""

from __future__ import annotations

import copyreg
import enum
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias, TypeVar, Union

import msgspec
from msgspec import UNSET, UnsetType, field

if TYPE_CHECKING:
    from virnucpro_tui.core.shards import Shard


def _unset() -> UnsetType:
    """``UNSET`` as pickle rebuilds it (events cross process pipes and Ray calls pickled)."""
    return UNSET


# ``UNSET`` has no ``__module__``: pickle finds it by scanning sys.modules, which misses it while
# another thread imports (a Ray actor under load: "Can't pickle UNSET: attribute lookup UNSET on
# __main__ failed"). Pickle it as a call of a function found by name instead.
copyreg.pickle(UnsetType, lambda _value: (_unset, ()))

SCHEMA_VERSION = 1
MODELS = ("dnabert", "esm", "classifier")  # ``model_load``'s ``model``, in load order
HISTOGRAM_BINS = 20  # ``shard_done``'s ``histogram``: P(virus) over 0..1
T = TypeVar("T")

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.10

    class StrEnum(str, enum.Enum):
        def __str__(self) -> str:
            return str(self.value)


class WorkerState(StrEnum):
    STARTING = "starting"
    IDLE = "idle"
    LOADING = "loading"
    BUSY = "busy"
    CLEARING = "clearing"
    STOPPED = "stopped"
    CRASHED = "crashed"
    RESTARTING = "restarting"

    @property
    def live(self) -> bool:
        """A worker in this state has its process and may take work."""
        return self in (
            WorkerState.IDLE,
            WorkerState.LOADING,
            WorkerState.BUSY,
            WorkerState.CLEARING,
        )

    @property
    def ended(self) -> bool:
        return self in (WorkerState.STOPPED, WorkerState.CRASHED)


class RunStatus(StrEnum):
    """A run's status: ``run_done`` carries one of the last three."""

    STARTING = "starting"
    RUNNING = "running"
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.COMPLETE, RunStatus.INTERRUPTED, RunStatus.FAILED)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    ASSEMBLING = "assembling"
    DONE = "done"
    FAILED = "failed"


class ModelPhase(StrEnum):
    """A model's load: start, then (a GPU fast path) warmup_start and warmup_done, then done;
    with compilation beside the run, ``compile_beside_start`` (the model runs uncompiled) and
    later ``compile_beside_done`` (compiled from its next batch)."""

    START = "start"
    WARMUP_START = "warmup_start"  # fast path, compilation and warm-up batches begin
    WARMUP_DONE = "warmup_done"  # ... and end (``seconds``)
    DONE = "done"
    ERROR = "error"
    COMPILE_BESIDE_START = "compile_beside_start"
    COMPILE_BESIDE_DONE = "compile_beside_done"  # ``seconds``: how long it compiled


def present(value: T | UnsetType) -> T | None:
    """A conditional field's value, or None when this event does not carry it."""
    return None if isinstance(value, UnsetType) else value


def _now() -> float:
    return round(time.time(), 3)


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False):
    """The fields every event has. Subclasses name their JSON ``type`` with ``tag=``."""

    TELEMETRY: ClassVar[bool] = False  # frequent readings a consumer may coalesce or drop

    v: int = SCHEMA_VERSION
    ts: float = field(default_factory=_now)
    worker: int | None = None
    job: str | None = None

    @property
    def type(self) -> str:
        return str(self.__struct_config__.tag)

    def to_json(self) -> dict[str, Any]:
        """The event as the JSON object written to events.jsonl."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


# -- worker events (a worker process or Ray actor sends them) -------------------------------------
class WorkerStateChanged(Event, frozen=True, kw_only=True, tag="worker_state"):
    state: WorkerState
    device: str
    pid: int | UnsetType = UNSET
    generation: int | UnsetType = UNSET
    uuid: str | None | UnsetType = UNSET  # on starting
    shard: int | UnsetType = UNSET  # on busy
    frames: int | UnsetType = UNSET  # on busy
    reason: str | UnsetType = UNSET  # on crashed, restarting, clearing
    node: str | UnsetType = UNSET  # from a Ray actor: the id of the Ray node it runs on
    host: str | UnsetType = UNSET  # from a Ray actor: that node's host name


class ModelLoad(Event, frozen=True, kw_only=True, tag="model_load"):
    model: str
    phase: ModelPhase
    source: str
    shard: int | None | UnsetType = UNSET
    dtype: str | UnsetType = UNSET
    seconds: float | UnsetType = UNSET  # on done (reading), warmup_done, compile_beside_done
    compile: bool | UnsetType = UNSET  # on warmup_start: whether torch.compile runs
    cached: bool | UnsetType = UNSET  # on warmup_start: compiled kernels of an earlier run load
    bytes_on_device: int | UnsetType = UNSET
    compile_seconds: float | None | UnsetType = UNSET
    fast_path: bool | UnsetType = UNSET
    demo: bool | UnsetType = UNSET
    message: str | UnsetType = UNSET  # on error


class Progress(Event, frozen=True, kw_only=True, tag="progress"):
    TELEMETRY: ClassVar[bool] = True

    shard: int
    stage: str  # start, dnabert, esm, classifier
    frames_done: int
    frames_total: int
    tokens: int
    seconds: float
    stage_done: int | UnsetType = UNSET
    stage_total: int | UnsetType = UNSET
    stage_seconds: float | UnsetType = UNSET  # on a stage's last event: GPU-synchronised

    @classmethod
    def shard_started(cls, worker: int, job: str, shard: int, frames: int) -> Progress:
        """The first progress event of a shard (stage ``start``, nothing done yet)."""
        return cls(
            worker=worker,
            job=job,
            shard=shard,
            stage="start",
            frames_done=0,
            frames_total=frames,
            tokens=0,
            seconds=0.0,
        )

    @property
    def closes_stage(self) -> bool:
        """The progress event that ends a model's stage: it carries that stage's timing."""
        return bool(self.stage_total) and self.stage_done == self.stage_total


class GpuMemory(Event, frozen=True, kw_only=True, tag="gpu_memory"):
    TELEMETRY: ClassVar[bool] = True

    kind: str  # cuda, cpu
    allocated: int
    reserved: int
    peak: int
    free: int
    total: int


class CacheCleared(Event, frozen=True, kw_only=True, tag="cache_cleared"):
    reason: str  # periodic, oom, manual
    bytes_freed: int
    reserved_before: int
    reserved_after: int


class ShardDone(Event, frozen=True, kw_only=True, tag="shard_done"):
    shard: int
    frames: int
    seconds: float
    tokens: int
    virus_frames: int
    others_frames: int
    histogram: tuple[int, ...]
    top: tuple[tuple[str, float], ...]
    # GPU-synchronised seconds per stage (tokenize, dnabert, esm, classifier): sum ~ seconds
    stage_seconds: dict[str, float] | UnsetType = UNSET


class OutOfMemory(Event, frozen=True, kw_only=True, tag="oom"):
    model: str
    batch_size: int
    action: str
    bytes_freed: int
    shard: int | None | UnsetType = UNSET


class ErrorEvent(Event, frozen=True, kw_only=True, tag="error"):
    message: str
    fatal: bool
    shard: int | UnsetType = UNSET
    traceback: str | UnsetType = UNSET
    disk_full: bool | UnsetType = UNSET
    path: str | UnsetType = UNSET

    @classmethod
    def of_shard(cls, worker: int, shard: Shard, message: str, **detail: Any) -> ErrorEvent:
        """The error of one shard on ``worker``; ``detail``: ``fatal`` and the other fields."""
        return cls(worker=worker, job=shard.job, shard=shard.index, message=message, **detail)


class Heartbeat(Event, frozen=True, kw_only=True, tag="heartbeat"):
    TELEMETRY: ClassVar[bool] = True

    state: WorkerState
    shard: int | None
    since_progress: float
    pid: int


# -- orchestrator events (the main process) -------------------------------------------------------
class SlotInfo(msgspec.Struct, frozen=True, gc=False):
    """One worker's device, as ``run_started`` lists it."""

    worker: int
    kind: str  # cuda, cpu
    index: int | None = None
    uuid: str | None = None
    name: str = "CPU"


class JobSize(msgspec.Struct, frozen=True, gc=False):
    """One input's size, as ``run_started`` lists it (known before preparation starts)."""

    job: str
    bytes: int  # the file on disk (compressed, for a compressed input)
    records: int
    chunks: int


class RunStarted(Event, frozen=True, kw_only=True, tag="run_started"):
    out: str
    inputs: tuple[str, ...] = ()
    jobs: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    workers: tuple[SlotInfo, ...] = ()
    demo: bool = False
    notice: str | None = None
    resumed: bool = False
    chunk_length: int | None = None
    shard_size: int | None = None
    precision: str | None = None
    backend: str | None = None
    pid: int | None = None
    persistent: bool | None = None
    sizes: tuple[JobSize, ...] = ()  # every job's input, to estimate totals from the start


class JobStarted(Event, frozen=True, kw_only=True, tag="job_started"):
    input: str
    out_dir: str
    records: int
    chunks_total: int
    bases: int


class JobAdded(Event, frozen=True, kw_only=True, tag="job_added"):
    input: str
    records: int
    chunks_total: int


class JobPrepared(Event, frozen=True, kw_only=True, tag="job_prepared"):
    chunks_prepared: int
    chunks_total: int
    frames_prepared: int
    done: bool
    shards_total: int | None
    bytes_read: int | UnsetType = UNSET  # of the input file (compressed bytes, if compressed)
    bytes_total: int | UnsetType = UNSET
    duplicate_frames: int = 0  # of frames_prepared, those identical to an earlier frame


class ShardSkipped(Event, frozen=True, kw_only=True, tag="shard_skipped"):
    shard: int
    frames: int


class ShardRequeued(Event, frozen=True, kw_only=True, tag="shard_requeued"):
    shard: int
    attempt: int
    reason: str


class GpuTelemetry(Event, frozen=True, kw_only=True, tag="gpu_telemetry"):
    TELEMETRY: ClassVar[bool] = True

    uuid: str
    index: int | None
    gpu_util: int
    mem_util: int
    memory_used: int
    memory_total: int
    temperature_c: int | UnsetType = UNSET
    power_w: float | UnsetType = UNSET


class JobDone(Event, frozen=True, kw_only=True, tag="job_done"):
    out_dir: str
    outputs: dict[str, str]
    sequences: int
    viral_sequences: int
    chunks: int
    chunks_with_frames: int
    chunks_without_frames: int
    frames: int
    virus_frames: int
    viral_chunks: int
    top_sequences: tuple[tuple[str, float, str], ...]
    skipped_shards: int
    seconds: float
    demo: bool
    duplicate_frames: int = 0  # frames that copied the result of an identical frame
    features_path: str | None = None  # --save-features: the job's features file
    features_bytes: int | None = None  # its size on disk (with the ids sidecar of safetensors)


class WarningEvent(Event, frozen=True, kw_only=True, tag="warning"):
    message: str
    shard: int | UnsetType = UNSET


class RunPaused(Event, frozen=True, kw_only=True, tag="run_paused"):
    shards_running: int | UnsetType = UNSET  # started shards that still finish


class RunResumed(Event, frozen=True, kw_only=True, tag="run_resumed"):
    pass


class RunDone(Event, frozen=True, kw_only=True, tag="run_done"):
    status: RunStatus
    exit_code: int
    seconds: float
    frames: int
    resumable: bool
    jobs: dict[str, JobStatus]


AnyEvent: TypeAlias = Union[  # noqa: UP007 - msgspec needs a Union object to decode into
    WorkerStateChanged,
    ModelLoad,
    Progress,
    GpuMemory,
    CacheCleared,
    ShardDone,
    OutOfMemory,
    ErrorEvent,
    Heartbeat,
    RunStarted,
    JobStarted,
    JobAdded,
    JobPrepared,
    ShardSkipped,
    ShardRequeued,
    GpuTelemetry,
    JobDone,
    WarningEvent,
    RunPaused,
    RunResumed,
    RunDone,
]
EVENT_CLASSES: dict[str, type[Event]] = {
    str(cls.__struct_config__.tag): cls
    for cls in AnyEvent.__args__  # type: ignore[attr-defined]
}
EVENT_TYPES = tuple(EVENT_CLASSES)
TELEMETRY_TYPES = frozenset(t for t, cls in EVENT_CLASSES.items() if cls.TELEMETRY)
EventSink = Callable[[Event], None]

_DECODER = msgspec.json.Decoder(AnyEvent)
_ENCODER = msgspec.json.Encoder()


def decode_event(line: bytes | str) -> Event | None:
    """One JSON line as an event; None when it is not a valid event of a known type."""
    try:
        event: Event = _DECODER.decode(line)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    return event


def parse_event(obj: object) -> Event | None:
    """A JSON object (already parsed) as an event; None when it is not a valid event."""
    try:
        event: Event = msgspec.convert(obj, AnyEvent)
    except msgspec.ValidationError:
        return None
    return event


def make_event(type_: str, **fields: Any) -> Event:
    """An event of the named type from keyword fields (e.g. a JSON object from a script), checked
    like untrusted input; fields the type does not define are ignored. Raises ValueError."""
    try:
        event: Event = msgspec.convert({"type": type_, **fields}, AnyEvent)
    except msgspec.ValidationError as exc:
        raise ValueError(f"not a valid {type_!r} event: {exc}") from None
    return event


def encode_event(event: Event) -> bytes:
    """The event as one JSON line (without the newline)."""
    return _ENCODER.encode(event)
