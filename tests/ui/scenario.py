"""A realistic, fixed event sequence: GPU workers on H200s in the middle of a run.

It feeds the README screenshot (``scripts/screenshot.py``) and the layout snapshot tests. It is
deterministic: fixed timestamps, a seeded generator, and ``NOW`` as the dashboard's clock. The
workers report what the engine reports on a GPU: a warm-up phase per model and
device-synchronised stage seconds (docs/events.md).
"""

from __future__ import annotations

import random
from typing import Any

from virnucpro_tui.pool.events import SCHEMA_VERSION, Event, parse_event

Record = dict[str, Any]  # an event as its JSON object, typed at the end (``_typed``)

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
NOW = T0 + 1_520.0
GIB = 2**30
MIB = 2**20
H200_TOTAL = 150_109_880_320  # 139.8 GiB
SHARD = 2048
OUT = "/scratch/alice/gut-virome/run1"


def _typed(records: list[Record]) -> list[Event]:
    events = [parse_event(r) for r in records]
    bad = [r for r, e in zip(records, events, strict=True) if e is None]
    assert not bad, f"not valid events: {bad[:1]}"
    return [e for e in events if e is not None]


def _event(
    ts: float, type_: str, worker: int | None = None, job: str | None = None, **fields: Any
) -> Record:
    return {
        "v": SCHEMA_VERSION,
        "ts": round(ts, 3),
        "type": type_,
        "worker": worker,
        "job": job,
        **fields,
    }


def _worker_state(ts: float, n: int, state: str, job: str | None = None, **fields: Any) -> Record:
    """A ``worker_state`` event of GPU worker ``n`` (its device, its pid, generation 0)."""
    return _event(
        ts,
        "worker_state",
        n,
        job,
        state=state,
        device=f"cuda:{n}",
        pid=48230 + n,
        generation=0,
        **fields,
    )


def _histogram(rng: random.Random, frames: int) -> list[int]:
    weights = [6, 9, 11, 12, 11, 10, 8, 6, 5, 4, 3, 3, 3, 3, 4, 4, 5, 6, 8, 10]
    counts = [0] * 20
    for i in rng.choices(range(20), weights=weights, k=frames // 16):
        counts[i] += 16
    return counts


def _start(ts: float, workers: int) -> list[Record]:
    infos = [
        {
            "worker": n,
            "kind": "cuda",
            "index": n,
            "uuid": f"GPU-5e0c{n:04d}-h200",
            "name": "NVIDIA H200",
        }
        for n in range(workers)
    ]
    events = [
        _event(
            ts,
            "run_started",
            out=OUT,
            inputs=["/data/gut_contigs.fa.gz", "/data/phage_reads.fa.gz"],
            jobs=["gut_contigs", "phage_reads"],
            devices=[f"cuda:{n}" for n in range(workers)],
            workers=infos,
            demo=False,
            notice=None,
            resumed=False,
            chunk_length=500,
            shard_size=SHARD,
            precision="bf16",
            backend="local",
            pid=48213,
            persistent=True,
            sizes=[
                {"job": "gut_contigs", "bytes": 108_233_417, "records": 118_437, "chunks": 742_860},
                {"job": "phage_reads", "bytes": 2_416_090, "records": 12_004, "chunks": 14_210},
            ],
        ),
        _event(
            ts + 0.2,
            "job_started",
            job="gut_contigs",
            input="/data/gut_contigs.fa.gz",
            out_dir=f"{OUT}/gut_contigs",
            records=118_437,
            chunks_total=742_860,
            bases=361_877_104,
        ),
        _event(
            ts + 96.0,
            "job_prepared",
            job="gut_contigs",
            chunks_prepared=742_860,
            chunks_total=742_860,
            frames_prepared=3_288_604,
            done=True,
            shards_total=1_606,
        ),
    ]
    for n in range(workers):
        events.append(_worker_state(ts + 1.0, n, "starting", uuid=infos[n]["uuid"]))
        events.append(_worker_state(ts + 4.0, n, "idle"))
        events += _model_loads(ts + 4.1, n)
    return events


def _model_loads(ts: float, worker: int) -> list[Record]:
    """As the engine loads on a GPU: DNABERT-S is read and compiled while ESM-2's file is read,
    then ESM-2 compiles; each compilation and warm-up is its own phase."""
    loads = [  # model, start, load seconds, warm-up start, warm-up seconds, size on the device
        ("dnabert", 0.0, 3.1, 3.1, 14.2, 358 * MIB),
        ("esm", 3.2, 7.7 + worker, 17.4, 23.9, 5.31 * GIB),
        ("classifier", 41.4, 0.02, None, None, 6.5 * MIB),
    ]
    events = []
    for model, begin, seconds, warmup_at, warmup, size in loads:
        source, common = f"/models/{model}", {"model": model, "dtype": "bfloat16"}
        events.append(
            _event(ts + begin, "model_load", worker, phase="start", source=source, **common)
        )
        end = ts + begin + seconds
        if warmup_at is not None and warmup is not None:
            events.append(
                _event(ts + warmup_at, "model_load", worker, phase="warmup_start", source=source)
                | {"model": model, "compile": True}
            )
            end = ts + warmup_at + warmup
            events.append(
                _event(end, "model_load", worker, phase="warmup_done", source=source)
                | {"model": model, "seconds": warmup}
            )
        events.append(
            _event(
                end,
                "model_load",
                worker,
                phase="done",
                seconds=seconds,
                bytes_on_device=int(size),
                source=source,
                demo=False,
                compile_seconds=warmup,
                fast_path=warmup is not None,
                **common,
            )
        )
    return events


def _shards(rng: random.Random, workers: int, start: float, until: float) -> list[Record]:
    events: list[Record] = []
    for n in range(workers):
        ts, done = start + n * 0.7, 0
        while True:
            seconds = SHARD / rng.uniform(
                515.0, 540.0
            )  # as measured on an H200 (docs/benchmarks.md)
            if ts + seconds > until:
                break
            ts += seconds
            done += 1
            virus = rng.randint(420, 560)
            top = [
                [
                    f"contig_{rng.randint(1, 118_437):06d}_chunk_{rng.randint(1, 9)}F{rng.randint(1, 3)}",
                    round(rng.uniform(0.97, 0.9995), 4),
                ]
                for _ in range(3)
            ]
            events.append(
                _event(
                    ts,
                    "shard_done",
                    n,
                    "gut_contigs",
                    shard=-1,
                    frames=SHARD,
                    seconds=round(seconds, 3),
                    tokens=SHARD * 290,
                    virus_frames=virus,
                    others_frames=SHARD - virus,
                    histogram=_histogram(rng, SHARD),
                    top=top,
                    stage_seconds=_stage_seconds(seconds),
                )
            )
            if done % 10 == 0:
                freed = int(rng.uniform(2.5, 6.0) * GIB)
                events.append(
                    _event(
                        ts + 0.01,
                        "cache_cleared",
                        n,
                        reason="periodic",
                        bytes_freed=freed,
                        reserved_before=int(74 * GIB),
                        reserved_after=int(74 * GIB) - freed,
                    )
                )
    events.sort(key=lambda e: e["ts"])
    finished = [e for e in events if e["type"] == "shard_done"]
    for index, event in enumerate(finished):  # shards are handed out in order
        event["shard"] = index
    return events


def _now_state(workers: int, next_shard: int) -> list[Record]:
    ts = NOW - 0.5
    events = []
    for n in range(workers):
        done = 1_180 if n == 0 else 420
        events += _closed_stages(ts - 2.1, n, next_shard - workers + n)
        events += [
            _worker_state(ts - 2, n, "busy", "gut_contigs", shard=next_shard + n, frames=SHARD),
            _event(
                ts - 1.2,
                "progress",
                n,
                "gut_contigs",
                shard=next_shard + n,
                stage="esm" if n == 0 else "dnabert",
                frames_done=done,
                frames_total=SHARD,
                stage_done=done * 2 - SHARD if n == 0 else done * 2,
                stage_total=SHARD,
                tokens=done * 290,
                seconds=2.1,
            ),
            _event(
                ts - 0.4,
                "gpu_memory",
                n,
                "gut_contigs",
                kind="cuda",
                allocated=int((61.2 + 3 * n) * GIB),
                reserved=int((72.0 + 2 * n) * GIB),
                peak=int((80.1 + n) * GIB),
                free=H200_TOTAL - int((73.6 + 2 * n) * GIB),
                total=H200_TOTAL,
            ),
            _event(
                ts - 0.3,
                "gpu_telemetry",
                n,
                uuid=f"GPU-5e0c{n:04d}-h200",
                index=n,
                gpu_util=97 - 3 * n,
                mem_util=71 + n,
                memory_used=int((73.6 + 2 * n) * GIB),
                memory_total=H200_TOTAL,
                temperature_c=64 + 2 * n,
                power_w=612 - 20 * n,
            ),
            _event(
                ts,
                "heartbeat",
                n,
                "gut_contigs",
                state="busy",
                shard=next_shard + n,
                since_progress=0.2,
                pid=48230 + n,
            ),
        ]
    return events


def _stage_seconds(seconds: float) -> dict[str, float]:
    """A shard's device-synchronised stage seconds: they add up to its seconds."""
    shares = {"tokenize": 0.010, "dnabert": 0.047, "esm": 0.940, "classifier": 0.003}
    return {stage: round(seconds * share, 4) for stage, share in shares.items()}


def _closed_stages(ts: float, worker: int, shard: int) -> list[Record]:
    """The previous shard's stage ends, which carry the per-model speeds."""
    common = {"shard": shard, "frames_total": SHARD, "stage_total": SHARD, "stage_done": SHARD}
    dnabert_s, esm_s = 0.18 + 0.01 * worker, 3.86 + 0.1 * worker  # ~11,300 and ~557 per s, measured
    return [
        _event(
            ts - esm_s,
            "progress",
            worker,
            "gut_contigs",
            stage="start",
            frames_done=0,
            tokens=0,
            seconds=0.0,
            **{k: v for k, v in common.items() if k in ("shard", "frames_total")},
        ),
        _event(
            ts - esm_s + dnabert_s,
            "progress",
            worker,
            "gut_contigs",
            stage="dnabert",
            frames_done=SHARD // 2,
            tokens=SHARD * 110,
            seconds=dnabert_s,
            stage_seconds=dnabert_s,
            **common,
        ),
        _event(
            ts,
            "progress",
            worker,
            "gut_contigs",
            stage="esm",
            frames_done=SHARD,
            tokens=SHARD * 290,
            seconds=esm_s,
            stage_seconds=round(esm_s - dnabert_s, 4),
            **common,
        ),
    ]


def mid_run_events(workers: int = 2, seed: int = 7) -> list[Event]:
    """The run 25 minutes in: job 1 of 2 half done, each worker busy, one OOM split on worker 1."""
    return _typed(_mid_run_records(workers, seed))


def finished_events(workers: int = 2, seed: int = 7) -> list[Event]:
    """The same run later: both jobs done, the run complete."""
    return _typed(_finished_records(workers, seed))


def _mid_run_records(workers: int, seed: int) -> list[Record]:
    rng = random.Random(seed)
    events = _start(T0, workers)
    shards = _shards(rng, workers, T0 + 48.0, NOW - 3.0)
    events += shards
    if workers > 1:
        events.append(
            _event(
                T0 + 900.0,
                "oom",
                1,
                "gut_contigs",
                model="esm",
                batch_size=512,
                action="split",
                bytes_freed=int(3.2 * GIB),
            )
        )
    events += _now_state(workers, sum(1 for e in shards if e["type"] == "shard_done"))
    return sorted(events, key=lambda e: e["ts"])


def _finished_records(workers: int, seed: int) -> list[Record]:
    events = _mid_run_records(workers, seed)
    end = NOW + 600.0
    for job, seqs, viral, chunks, frames in (
        ("gut_contigs", 118_437, 21_377, 742_860, 3_288_604),
        ("phage_reads", 12_004, 10_881, 14_210, 60_512),
    ):
        outputs = {
            name: f"{OUT}/{job}/{name}"
            for name in (
                "prediction_results.txt",
                "prediction_results_highestscore.csv",
                "sequence_summary.tsv",
            )
        }
        events.append(
            _event(
                end,
                "job_done",
                job=job,
                out_dir=f"{OUT}/{job}",
                outputs=outputs,
                sequences=seqs,
                viral_sequences=viral,
                chunks=chunks,
                chunks_with_frames=chunks - 1_022,
                chunks_without_frames=1_022,
                frames=frames,
                virus_frames=frames // 4,
                viral_chunks=viral * 2,
                skipped_shards=0,
                seconds=1_900.0,
                demo=False,
                top_sequences=[
                    [f"contig_{i:05d}", round(0.9999 - i * 1e-4, 4), "virus"] for i in range(1, 11)
                ],
            )
        )
    for n in range(workers):
        events.append(_worker_state(end + 0.5, n, "stopped"))
    events.append(
        _event(
            end + 1.0,
            "run_done",
            status="complete",
            exit_code=0,
            seconds=end + 1 - T0,
            frames=3_349_116,
            resumable=False,
            jobs={"gut_contigs": "done", "phage_reads": "done"},
        )
    )
    return events
