"""The pool's supervision against the in-memory fake transport (virtual time, no processes):
kills, hangs, slow workers, a failure on the Nth shard, restart limits, prefetch, pause and
stop, each in milliseconds. The same paths run with real processes in test_pool.py and
test_faults.py (docs/reliability.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from virnucpro_tui.core.shards import Shard
from virnucpro_tui.core.translation import Frame
from virnucpro_tui.errors import DiskFullError, WorkerFailure
from virnucpro_tui.models.settings import ModelFiles
from virnucpro_tui.pool import events as ev
from virnucpro_tui.pool import transport as tp
from virnucpro_tui.pool.devices import DeviceSlot
from virnucpro_tui.pool.faults import FaultPlan
from virnucpro_tui.pool.layout import RunLayout
from virnucpro_tui.pool.pool import PersistentWorkerPool, PoolPolicy
from virnucpro_tui.pool.worker_config import WorkerConfig
from virnucpro_tui.testing.fake_backend import FakeBackend, FakeWorkerPlan

FILES = ModelFiles(Path("esm"), Path("dnabert"), Path("classifier"))


def shards(count: int, frames: int = 4, job: str = "j") -> list[Shard]:
    return [
        Shard(job, i, [Frame(f"s{i}_{k}_1", "ACG", "T") for k in range(frames)])
        for i in range(count)
    ]


class Recorder:
    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def __call__(self, event: ev.Event) -> None:
        self.events.append(event)

    def states(self, worker: int) -> list[str]:
        return [
            e.state
            for e in self.events
            if isinstance(e, ev.WorkerStateChanged) and e.worker == worker
        ]

    def of(self, cls: type[ev.Event]) -> list[ev.Event]:
        return [e for e in self.events if isinstance(e, cls)]


def make_pool(
    backend: FakeBackend, workers: int = 2, **policy: float
) -> tuple[PersistentWorkerPool[object], Recorder]:
    recorder = Recorder()
    slots = [DeviceSlot(n, "cpu") for n in range(workers)]

    def config(slot: DeviceSlot, generation: int) -> WorkerConfig:
        return WorkerConfig(
            slot=slot, layout=RunLayout(Path("/nonexistent")), files=FILES, generation=generation
        )

    pool = PersistentWorkerPool(backend, slots, config, recorder, PoolPolicy(**policy))  # type: ignore[arg-type]
    pool.start()
    return pool, recorder


def run_all(
    pool: PersistentWorkerPool[object], work: list[Shard], limit: int = 10_000
) -> list[ev.Event]:
    """Submit ``work`` and poll until every shard is done; the events the pool returned."""
    for shard in work:
        pool.submit(shard)
    returned: list[ev.Event] = []
    for _ in range(limit):
        returned += pool.poll(0.2)
        done = {e.shard for e in returned if isinstance(e, ev.ShardDone)}
        if done >= {s.index for s in work} and not pool.in_flight:
            return returned
    raise AssertionError(f"not done after {limit} polls: {pool.backlog} queued")


def start_all(pool: PersistentWorkerPool[object], backend: FakeBackend, work: list[Shard]) -> None:
    """Submit ``work`` and poll until every worker runs a shard."""
    for shard in work:
        pool.submit(shard)
    while not all(t.current for t in backend.spawned):
        pool.poll(0.2)


def done_by(events: list[ev.Event]) -> dict[int, int]:
    """Shard index -> the worker that finished it (each shard at most once)."""
    out: dict[int, int] = {}
    for e in events:
        if isinstance(e, ev.ShardDone):
            assert e.shard not in out, f"shard {e.shard} finished twice"
            assert e.worker is not None
            out[e.shard] = e.worker
    return out


def test_instant_workers_share_the_work_and_load_once() -> None:
    backend = FakeBackend()
    pool, rec = make_pool(backend, workers=2)
    returned = run_all(pool, shards(10))
    assert sorted(done_by(returned)) == list(range(10))
    assert set(done_by(returned).values()) == {0, 1}
    loads = [
        e
        for e in rec.of(ev.ModelLoad)
        if isinstance(e, ev.ModelLoad) and e.phase == ev.ModelPhase.DONE
    ]
    assert sorted((e.worker, e.model) for e in loads) == sorted(
        (w, m) for w in (0, 1) for m in ("classifier", "dnabert", "esm")
    )
    assert all(w.models_loaded for w in pool.workers)
    pool.stop(graceful=True)
    assert (
        rec.states(0)[-1] == ev.WorkerState.STOPPED and rec.states(1)[-1] == ev.WorkerState.STOPPED
    )
    assert [t.exit_reason() for t in backend.spawned] == ["exited with code 0"] * 2


def test_a_killed_worker_is_respawned_and_its_shards_requeued() -> None:
    plan = FakeWorkerPlan(seconds_per_shard=1.0, faults=FaultPlan(exit_on_shard=2))
    backend = FakeBackend({0: plan}, default=FakeWorkerPlan(seconds_per_shard=1.0))
    pool, rec = make_pool(backend)
    returned = run_all(pool, shards(8))
    assert sorted(done_by(returned)) == list(range(8))  # every shard once
    assert rec.states(0).count(ev.WorkerState.CRASHED) == 1
    crashed = next(e for e in rec.of(ev.WorkerStateChanged) if e.state == ev.WorkerState.CRASHED)
    assert crashed.reason == "exited with code 9"
    restarting = [e for e in rec.of(ev.WorkerStateChanged) if e.state == ev.WorkerState.RESTARTING]
    assert [(e.worker, e.generation) for e in restarting] == [(0, 1)]
    requeued = rec.of(ev.ShardRequeued)
    died_on = backend.workers(0)[0].started[-1]
    assert died_on in {f"j/{e.shard:06d}" for e in requeued}  # the shard it died on came back
    assert all(e.attempt == 1 and "exited with code 9" in e.reason for e in requeued)
    assert len(backend.workers(0)) == 2  # one respawn, which then worked


def test_a_hung_worker_is_killed_after_the_timeout() -> None:
    plan = FakeWorkerPlan(seconds_per_shard=1.0, faults=FaultPlan(hang_on_shard=2))
    backend = FakeBackend({0: plan}, default=FakeWorkerPlan(seconds_per_shard=1.0))
    pool, rec = make_pool(backend, workers=1, hang_timeout_s=120.0)
    start = backend.now()
    returned = run_all(pool, shards(4))
    assert sorted(done_by(returned)) == [0, 1, 2, 3]
    crashed = [e for e in rec.of(ev.WorkerStateChanged) if e.state == ev.WorkerState.CRASHED]
    assert len(crashed) == 1 and crashed[0].reason == "hung: no heartbeat for 120 s, killed"
    assert backend.workers(0)[0].exit_reason() == "exited with signal SIGKILL"
    assert backend.now() - start > 120  # the timeout passed, in virtual time


def test_a_slow_worker_does_not_hold_a_backlog() -> None:
    backend = FakeBackend({0: FakeWorkerPlan(seconds_per_shard=20.0)},
                          default=FakeWorkerPlan(seconds_per_shard=1.0))  # fmt: skip
    pool, _ = make_pool(backend)
    finished = done_by(run_all(pool, shards(24)))
    fast = sum(1 for w in finished.values() if w == 1)
    assert fast >= 20, finished  # the fast worker took nearly all of it
    assert backend.workers(0)[0].most_held <= 2  # the slow one held its shard + one prefetched


def test_a_failure_on_the_nth_shard_is_retried_elsewhere() -> None:
    plan = FakeWorkerPlan(faults=FaultPlan(fail_on_shard=3))
    backend = FakeBackend({1: plan})
    pool, rec = make_pool(backend)
    returned = run_all(pool, shards(6))
    assert sorted(done_by(returned)) == list(range(6))
    failed_key = backend.workers(1)[0].started[2]
    (requeued,) = rec.of(ev.ShardRequeued)
    assert isinstance(requeued, ev.ShardRequeued)
    assert f"j/{requeued.shard:06d}" == failed_key and requeued.attempt == 1
    assert "failed (injected fault)" in requeued.reason
    errors = [e for e in rec.of(ev.ErrorEvent) if isinstance(e, ev.ErrorEvent)]
    assert len(errors) == 1 and not errors[0].fatal
    assert not rec.of(ev.WorkerStateChanged) or ev.WorkerState.CRASHED not in rec.states(1)


def test_a_worker_is_retired_after_its_restart_limit() -> None:
    dies = FakeWorkerPlan(faults=FaultPlan(exit_on_shard=1, generations=[0, 1, 2, 3]))
    backend = FakeBackend(default=dies)
    pool, rec = make_pool(backend, workers=1, max_restarts=2)
    with pytest.raises(WorkerFailure, match="every worker failed past its restart limit") as err:
        run_all(pool, shards(3))
    assert "exited with code 9" in str(err.value) and "logs/worker-0.log" in str(err.value)
    states = rec.states(0)
    assert (
        states.count(ev.WorkerState.CRASHED) == 3 and states.count(ev.WorkerState.RESTARTING) == 2
    )
    retired = [e for e in rec.of(ev.ErrorEvent) if isinstance(e, ev.ErrorEvent)]
    assert len(retired) == 1 and "restart limit (2) reached, retired" in retired[0].message
    assert pool.backlog == 3  # nothing lost: the shards wait for a resume


def test_one_worker_retired_the_other_finishes_the_work() -> None:
    dies = FakeWorkerPlan(faults=FaultPlan(exit_on_shard=1, generations=[0, 1]))
    backend = FakeBackend({0: dies})
    pool, _ = make_pool(backend, workers=2, max_restarts=1)
    finished = done_by(run_all(pool, shards(6)))
    assert sorted(finished) == list(range(6)) and set(finished.values()) == {1}
    assert pool.workers[0].retired and not pool.workers[1].retired


@pytest.mark.parametrize(("prefetch", "held"), [(0, 1), (1, 2), (3, 4)])
def test_prefetch_depth(prefetch: int, held: int) -> None:
    backend = FakeBackend(default=FakeWorkerPlan(seconds_per_shard=1.0))
    pool, _ = make_pool(backend, workers=1, prefetch=prefetch)
    run_all(pool, shards(12))
    assert backend.workers(0)[0].most_held == held


def test_no_prefetch_when_the_backlog_is_short() -> None:
    backend = FakeBackend(default=FakeWorkerPlan(seconds_per_shard=1.0))
    pool, _ = make_pool(backend, workers=2)
    run_all(pool, shards(2))
    assert [t.most_held for t in backend.spawned] == [1, 1]


def test_pause_takes_back_the_shards_not_started() -> None:
    backend = FakeBackend(default=FakeWorkerPlan(seconds_per_shard=5.0))
    pool, rec = make_pool(backend, workers=2)
    start_all(pool, backend, shards(10))
    assert pool.in_flight == 4  # two running, two prefetched
    running = pool.pause()
    assert running == 2 and pool.in_flight == 2 and pool.backlog == 8
    assert sorted(s.index for s in pool.queue)[:2] == [1, 3]  # the prefetched, back first
    assert {s.index for s in list(pool.queue)[:2]} == {1, 3}
    paused_at = len(rec.events)
    for _ in range(200):  # long enough for the running shards to finish
        pool.poll(0.2)
    after = rec.events[paused_at:]
    assert sorted(e.shard for e in after if isinstance(e, ev.ShardDone)) == [0, 2]
    assert not [e for e in after if isinstance(e, ev.WorkerStateChanged) and e.state == "busy"]
    assert pool.running == 0 and pool.backlog == 8
    pool.resume()
    returned = run_all(pool, [])
    finished = {e.shard for e in rec.of(ev.ShardDone) if isinstance(e, ev.ShardDone)}
    assert finished == set(range(10)) and returned is not None


def test_a_recall_answered_after_a_result_does_not_count_that_shard_as_running() -> None:
    """A worker may answer a recall just after sending a shard's result (seen under load): the
    reply naming that shard must not make the pool, and so the paused header, wait for it."""
    backend = FakeBackend(default=FakeWorkerPlan(seconds_per_shard=1.0))
    pool, rec = make_pool(backend, workers=1)
    start_all(pool, backend, shards(1))
    (transport,) = backend.spawned
    finished = transport.current
    assert finished is not None and pool.running == 1
    while not rec.of(ev.ShardDone):
        pool.poll(0.2)
    assert pool.running == 0
    transport.outbox.append(tp.Recalled((), finished.key))  # the late reply
    pool.poll(0.2)
    assert pool.running == 0 and pool.pause() == 0


def test_pause_before_the_first_shard_starts_nothing() -> None:
    backend = FakeBackend()
    pool, rec = make_pool(backend, workers=2)
    assert pool.pause() == 0
    for shard in shards(3):
        pool.submit(shard)
    for _ in range(20):
        pool.poll(0.2)
    assert not rec.of(ev.ShardDone) and pool.backlog == 3
    pool.resume()
    assert sorted(done_by(run_all(pool, []))) == [0, 1, 2]


def test_graceful_stop_finishes_what_workers_hold() -> None:
    backend = FakeBackend(default=FakeWorkerPlan(seconds_per_shard=5.0))
    pool, rec = make_pool(backend, workers=2)
    start_all(pool, backend, shards(10))
    pool.drain()
    pool.stop(graceful=True)
    assert sorted(e.shard for e in rec.of(ev.ShardDone) if isinstance(e, ev.ShardDone)) == [
        0,
        1,
        2,
        3,
    ]
    assert not rec.of(ev.ShardRequeued) and pool.backlog == 0
    assert [t.exit_reason() for t in backend.spawned] == ["exited with code 0"] * 2
    assert rec.states(0)[-1] == rec.states(1)[-1] == ev.WorkerState.STOPPED


def test_abandoning_kills_at_once() -> None:
    backend = FakeBackend(default=FakeWorkerPlan(seconds_per_shard=5.0))
    pool, rec = make_pool(backend, workers=2)
    start_all(pool, backend, shards(4))
    pool.stop(graceful=False)
    assert not rec.of(ev.ShardDone)
    assert [t.exit_reason() for t in backend.spawned] == ["exited with signal SIGKILL"] * 2
    assert rec.states(0)[-1] == ev.WorkerState.STOPPED


def test_a_worker_that_cannot_load_its_models_fails_the_run() -> None:
    backend = FakeBackend({0: FakeWorkerPlan(faults=FaultPlan(fail_load=True))})
    pool, _ = make_pool(backend, workers=1)
    with pytest.raises(
        WorkerFailure, match=r"worker 0 \(CPU worker 0\) could not load the models \(.*loading"
    ):
        run_all(pool, shards(2))


def test_a_full_disk_stops_at_once() -> None:
    backend = FakeBackend({0: FakeWorkerPlan(faults=FaultPlan(enospc_on_shard_write=2))})
    pool, rec = make_pool(backend, workers=1)
    with pytest.raises(DiskFullError, match="No space left"):
        run_all(pool, shards(4))
    assert not rec.of(ev.ShardRequeued)


def test_many_instant_workers() -> None:
    backend = FakeBackend(virtual_time=False)
    pool, _ = make_pool(backend, workers=8)
    finished = done_by(run_all(pool, shards(400, frames=1)))
    assert sorted(finished) == list(range(400)) and len(set(finished.values())) == 8


# -- a worker whose machine is lost (a Ray node), and one that cannot find room to start -------
def test_a_worker_whose_host_is_lost_is_respawned_without_counting_a_restart() -> None:
    backend = FakeBackend(
        plans={1: FakeWorkerPlan(seconds_per_shard=1.0, host_lost_on_shard=2)},
        default=FakeWorkerPlan(seconds_per_shard=1.0),
    )
    pool, rec = make_pool(backend, workers=2, max_restarts=0)  # a counted restart would retire
    returned = run_all(pool, shards(8))
    assert sorted(done_by(returned)) == list(range(8))
    crashed = [e for e in rec.of(ev.WorkerStateChanged) if e.state == ev.WorkerState.CRASHED]
    assert [(e.worker, e.reason) for e in crashed] == [(1, "node lost (its host is gone)")]
    assert ev.WorkerState.RESTARTING in rec.states(1) and not pool.workers[1].retired
    assert (pool.workers[1].generation, pool.workers[1].restarts) == (1, 0)
    assert not rec.of(ev.ErrorEvent)  # nothing retired
    requeued = rec.of(ev.ShardRequeued)
    assert requeued and all("node lost" in e.reason for e in requeued)  # type: ignore[attr-defined]
    assert 1 in done_by(returned).values()  # the new worker took shards


def test_a_replacement_with_no_room_gets_no_shards_and_the_others_finish() -> None:
    plan = FakeWorkerPlan(seconds_per_shard=10.0, host_lost_on_shard=1, unplaced_generations=(1,))
    backend = FakeBackend(plans={1: plan}, default=FakeWorkerPlan(seconds_per_shard=10.0))
    pool, rec = make_pool(backend, workers=2, hang_timeout_s=30)
    returned = run_all(pool, shards(8))
    waiting = backend.spawned[-1]
    assert waiting.config.generation == 1 and not waiting.ready and waiting.started == []
    assert done_by(returned) == dict.fromkeys(range(8), 0)  # the lost one's shard included
    warnings = [e for e in rec.of(ev.WarningEvent) if e.worker == 1]
    assert [e.message for e in warnings] == [  # type: ignore[attr-defined]
        "worker 1 (CPU worker 1) has not started after 30 s: waiting for a place to run (a Ray "
        "node with room for it) or still starting; the run goes on with the other workers"
    ]  # once, although it waited several hang timeouts (80 s of work)
    assert [s for s in rec.states(1) if s == ev.WorkerState.CRASHED] == [ev.WorkerState.CRASHED]
    started = backend.now()
    pool.stop(graceful=True)
    assert backend.now() - started < 5  # not held up by the one that never started
    assert not waiting.alive and rec.states(1)[-1] == ev.WorkerState.STOPPED


def test_a_worker_that_never_starts_while_no_other_works_is_a_counted_failure() -> None:
    plan = FakeWorkerPlan(unplaced_generations=(0, 1))
    backend = FakeBackend(default=plan)
    pool, rec = make_pool(backend, workers=1, hang_timeout_s=30, max_restarts=1)
    for shard in shards(2):
        pool.submit(shard)
    with pytest.raises(WorkerFailure, match="did not start within 6. s"):
        for _ in range(1000):
            pool.poll(1.0)
    assert pool.backlog == 2 and not any(t.started for t in backend.spawned)
    assert not rec.of(ev.WarningEvent)  # nobody else works: it is not just waiting


def test_a_worker_still_starting_gets_the_start_allowance_past_a_short_hang_timeout() -> None:
    """A Ray actor booting on a loaded node sends nothing until it has started: with
    --hang-timeout 10 every actor of a run was killed at 10 s, three times, and the run failed
    (seen at load 6 on two cores). A worker not started yet gets ``start_timeout_s``."""
    late = FakeWorkerPlan(unplaced_generations=(0,), placed_after_s=40.0)
    backend = FakeBackend(default=late)
    pool, rec = make_pool(backend, workers=1, hang_timeout_s=10)
    returned = run_all(pool, shards(2))
    assert sorted(done_by(returned)) == [0, 1]
    assert len(backend.spawned) == 1 and ev.WorkerState.CRASHED not in rec.states(0)
    assert backend.now() >= 40  # it started 40 s in, past four hang timeouts
    never = FakeBackend(default=FakeWorkerPlan(unplaced_generations=(0, 1)))
    pool, rec = make_pool(never, workers=1, hang_timeout_s=10, max_restarts=1)
    pool.submit(shards(1)[0])
    with pytest.raises(WorkerFailure, match="did not start within 6. s"):
        for _ in range(1000):
            pool.poll(1.0)
    crashed = [e for e in rec.of(ev.WorkerStateChanged) if e.state == ev.WorkerState.CRASHED]
    assert len(crashed) == 2 and never.now() >= 120  # killed at 60 s each, not at 10 s


def test_the_backends_warnings_are_events() -> None:
    backend = FakeBackend()
    backend.warnings = ["the cluster has no token authentication"]
    _, rec = make_pool(backend, workers=1)
    assert [e.message for e in rec.of(ev.WarningEvent)] == backend.warnings  # type: ignore[attr-defined]
