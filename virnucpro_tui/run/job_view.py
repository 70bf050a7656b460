"""A job (one input) as the views see it: its preparation, its verified shards, its result, and
its size (exact once prepared, estimated before)."""

from __future__ import annotations

from dataclasses import dataclass, field

from virnucpro_tui.pool import events as ev

# Frames per chunk vary from one record to the next (a coding gene gives about one stop-free
# frame per chunk, a non-coding stretch almost none): a job's size is extrapolated only from a
# sample of this many chunks, or this share of the job, whichever is smaller. On the sample
# data, every estimate from such a sample is within 30% of the final count (tests/test_estimates.py).
SAMPLE_CHUNKS = 300
SAMPLE_SHARE = 0.3


@dataclass
class JobView:
    name: str
    input: str = ""
    status: ev.JobStatus = ev.JobStatus.QUEUED
    records: int = 0
    chunks_total: int = 0
    chunks_prepared: int = 0
    frames_prepared: int = 0
    duplicate_frames: int = 0  # prepared frames that copy an identical frame's result
    bytes_read: int = 0
    bytes_total: int = 0
    prepared: bool = False
    shards: dict[int, int] = field(default_factory=dict)  # verified shards: index -> frames
    out_dir: str = ""
    result: ev.JobDone | None = None
    added: bool = False  # added while the run was going (UI `a`)
    earlier_total: int | None = None  # exact in an earlier segment: a resume prepares the same

    @property
    def frames_done(self) -> int:
        return self.result.frames if self.result is not None else sum(self.shards.values())

    @property
    def frames_total(self) -> int | None:
        """Exact once preparation is done; None before (see ``frames_estimate``). Until the job
        is done, the frames to compute: duplicates are copied, not computed
        (docs/architecture.md#identical-frames-computed-once)."""
        if self.result is not None:
            return self.result.frames
        return self.frames_to_compute if self.prepared else None

    @property
    def frames_to_compute(self) -> int:
        return self.frames_prepared - self.duplicate_frames

    def frames_estimate(self, frames_per_chunk: float | None) -> int | None:
        """The job's frames: exact once prepared (or in an earlier segment: a resume prepares the
        same), else extrapolated from what was prepared per chunk (or per byte read), else from
        its chunk count at ``frames_per_chunk``."""
        exact = self.frames_total if self.frames_total is not None else self.earlier_total
        if exact is not None:
            return exact
        estimate = self._extrapolate(frames_per_chunk)
        if estimate is None:
            return None
        return max(round(estimate), self.frames_to_compute, self.frames_done)

    def _extrapolate(self, frames_per_chunk: float | None) -> float | None:
        frames = self.frames_to_compute
        if self.sampled and self.chunks_total:
            return frames / self.chunks_prepared * self.chunks_total
        if frames and not self.chunks_total and self.bytes_read and self.bytes_total:
            return frames / self.bytes_read * self.bytes_total  # logs without the chunk count
        if self.chunks_total and frames_per_chunk is not None:
            return self.chunks_total * frames_per_chunk
        return None

    @property
    def sampled(self) -> bool:
        """Enough of the job is prepared for its frames per chunk to say something of the rest."""
        if self.prepared:
            return True
        enough = min(SAMPLE_CHUNKS, SAMPLE_SHARE * self.chunks_total) if self.chunks_total else 0
        return self.chunks_prepared > 0 and self.chunks_prepared >= enough

    @property
    def fraction_read(self) -> float | None:
        """How much of the input preparation has read, by bytes (None before it starts)."""
        if self.prepared:
            return 1.0
        return self.bytes_read / self.bytes_total if self.bytes_total else None


@dataclass(frozen=True)
class Totals:
    """The run's frames: done, and the total (an estimate until every job is prepared) of the
    jobs whose size is known; ``unsized`` jobs cannot be estimated yet (event logs written
    before ``run_started`` listed the inputs' sizes)."""

    done: int
    total: int | None
    exact: bool
    unsized: int = 0

    @property
    def fraction(self) -> float | None:
        if self.total is None:
            return None
        return min(self.done / self.total, 1.0) if self.total else 1.0
