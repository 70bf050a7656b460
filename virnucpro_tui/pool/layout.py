"""The run directory's layout: every path a worker, the pool, the Ray backend, the orchestrator
and ``attach`` use inside ``--out`` (docs/architecture.md#the-run-directory).

::

    OUT/.lock                  who runs it (``run/rundir.py``'s ``LockRecord``)
    OUT/manifest.json          inputs, settings, model checksums, status
    OUT/events.jsonl[.1..3]    the event stream (docs/events.md)
    OUT/shards/JOB/000042.tsv  one verified result file per shard
    OUT/shards/JOB/000042.features.safetensors   its features (--save-features)
    OUT/shards/JOB/records.tsv the job's sequences, in input order
    OUT/shards/JOB/duplicates.tsv  frames not computed: an identical frame's result is copied
    OUT/shards/JOB/.dedup-keys.partial  distinct frames' keys while the job is prepared
    OUT/logs/worker-N.log      a worker's stdout and stderr
    OUT/logs/ray-driver.log    the Ray cluster used, and Ray's own notices (``--backend ray``)
    OUT/logs/.ray-run          a token each Ray node checks it can read (a shared ``--out``)
    OUT[/JOB]/...              the final outputs (a subdirectory per job when there are several)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from virnucpro_tui.core.shards import shard_features_path, shard_path

MANIFEST = "manifest.json"
EVENTS = "events.jsonl"
LOCK = ".lock"
RECORDS = "records.tsv"
DUPLICATES = "duplicates.tsv"
DEDUP_KEYS = ".dedup-keys.partial"  # a hidden .partial name: a killed run's copy is cleaned up


@dataclass(frozen=True)
class RunLayout:
    root: Path

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def events(self) -> Path:
        return self.root / EVENTS

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    def job_shards(self, job: str) -> Path:
        return self.shards / job

    def shard_result(self, job: str, index: int) -> Path:
        return shard_path(self.shards, job, index)

    def shard_features(self, job: str, index: int) -> Path:
        return shard_features_path(self.shards, job, index)

    def records(self, job: str) -> Path:
        return self.job_shards(job) / RECORDS

    def duplicates(self, job: str) -> Path:
        return self.job_shards(job) / DUPLICATES

    def dedup_keys(self, job: str) -> Path:
        return self.job_shards(job) / DEDUP_KEYS

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def worker_log(self, worker: int) -> Path:
        return self.logs / f"worker-{worker}.log"

    @staticmethod
    def worker_log_name(worker: int) -> str:
        """The worker's log as named to the user, relative to the run directory."""
        return f"logs/worker-{worker}.log"

    @property
    def ray_driver_log(self) -> Path:
        return self.logs / "ray-driver.log"

    @property
    def ray_run_marker(self) -> Path:
        return self.logs / ".ray-run"

    def job_dir(self, job: str, single: bool) -> Path:
        """Where a job's final outputs go: the run directory itself for a single input."""
        return self.root if single else self.root / job
