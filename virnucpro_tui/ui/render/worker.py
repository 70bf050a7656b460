"""A worker's panel: its title and its labelled lines (state, models, memory, speed, shard,
cache)."""

from __future__ import annotations

from rich.text import Text

from virnucpro_tui.pool import events as ev
from virnucpro_tui.run.describe import (
    MODEL_LABELS,
    fmt_bytes,
    fmt_duration,
    fmt_rate,
    model_phase,
    phase_elapsed,
    plural,
)
from virnucpro_tui.run.view import WorkerView
from virnucpro_tui.ui.render.text import (
    FILLED,
    FREE,
    OTHERS,
    RESERVED,
    bar,
    join_lines,
    labelled,
    sparkline,
    stacked_bar,
)

STATE_STYLES = {
    "busy": "bold green",
    "idle": "cyan",
    "loading": "bold yellow",
    "starting": "yellow",
    "clearing": "magenta",
    "stopped": "dim",
    "crashed": "bold red",
    "restarting": "bold red",
    "gone": "bold red",
}
SILENT_AFTER_S = 10.0
MEMORY_LEGEND = {
    "GPU": ((FILLED, "allocated"), (RESERVED, "reserved (cache)"), (FREE, "free")),
    "CPU": ((FILLED, "this worker (RSS)"), (OTHERS, "other processes"), (FREE, "free")),
}


def worker_title(w: WorkerView) -> Text:
    state = "gone" if w.gone else str(w.state)
    return Text.assemble(
        (f"worker {w.worker}", "bold"),
        f" · {w.device or 'device pending'} · ",
        (state.upper(), STATE_STYLES.get(state, "")),
    )


def worker_text(w: WorkerView, width: int, now: float, running: bool, rate: float = 0.0) -> Text:
    """The panel's lines; ``rate``: the worker's frames/s over its recent finished shards (the
    run's rate in the header is the sum of these)."""
    lines = [
        *labelled("state", _state_segments(w, now, running), width),
        *labelled("models", _model_segments(w, now, running), width),
        *labelled("memory", _memory_segments(w, width), width),
        *labelled("speed", _speed_segments_worker(w, width, rate), width),
        *labelled("shard", _shard_segments(w, width), width),
        *labelled("cache", _cache_segments(w), width),
    ]
    if w.last_error:
        lines += labelled("problem", [Text(w.last_error, style="red")], width)
    return join_lines(lines)


def _state_segments(w: WorkerView, now: float, running: bool) -> list[Text]:
    if w.gone:
        pid = f" (pid {w.pid})" if w.pid else ""
        return [Text(f"gone{pid}: the run's process died", style=STATE_STYLES["gone"])]
    segments = [Text(w.state, style=STATE_STYLES.get(w.state, ""))]
    if w.pid:
        segments.append(Text(f"pid {w.pid}"))
    segments.append(Text(f"restarts {w.restarts}", style="bold red" if w.restarts else ""))
    silent = now - w.last_event if w.last_event else 0.0
    if running and not w.state.ended and silent > SILENT_AFTER_S:
        segments.append(Text(f"silent for {fmt_duration(silent)}", style="bold red"))
    if w.state.ended:
        return segments  # the last NVML reading would be stale
    return segments + _utilisation_segments(w)


def _utilisation_segments(w: WorkerView) -> list[Text]:
    if w.kind == "cpu" or (w.memory is not None and w.memory.kind == "cpu"):
        return [Text("util CPU (no NVML)", style="dim")]
    t = w.telemetry
    if t is None:
        return [Text("GPU util -", style="dim")]
    segments = [
        Text(f"GPU util {t.gpu_util:.0f}%", style="bold"),
        Text(f"mem util {t.mem_util:.0f}%"),
    ]
    if (temperature := ev.present(t.temperature_c)) is not None:
        segments.append(Text(f"{temperature:.0f} °C"))
    if (power := ev.present(t.power_w)) is not None:
        segments.append(Text(f"{power:.0f} W"))
    return segments


def _model_segments(w: WorkerView, now: float, running: bool) -> list[Text]:
    segments = []
    for name in ev.MODELS:
        m = w.models.get(name)
        label = MODEL_LABELS.get(name, name)
        if m is None or m.state == "not loaded":
            segments.append(Text(f"{label} not loaded", style="dim"))
        elif m.busy:
            elapsed = f" {phase_elapsed(m, now)}" if running else ""
            segments.append(Text(f"{label} {model_phase(m)}…{elapsed}", style="bold yellow"))
        elif m.state == "error":
            segments.append(Text(f"{label} load error", style="bold red"))
        else:
            size = fmt_bytes(m.bytes_on_device)
            warmup = f" + warm-up {m.warmup_seconds:.1f} s" if m.warmup_seconds else ""
            text = f"{label} loaded {m.seconds or 0:.1f} s{warmup}, {size}"
            segments.append(Text(text, style="green"))
            if m.compiling_beside:  # its own segment: a long line would be cut in a narrow panel
                segments.append(Text(f"{label} uncompiled: compiling beside", style="yellow"))
    return segments


def _memory_segments(w: WorkerView, width: int) -> list[Text]:
    mem = w.memory
    if mem is None or not mem.total:
        return [Text("no reading yet", style="dim")]
    total, allocated, reserved = mem.total, mem.allocated, mem.reserved
    bar_width = max(min(width // 4, 30), 10)
    if mem.kind == "cpu":
        used = total - mem.free
        gauge = stacked_bar(
            total, [(allocated, FILLED, "green"), (used - allocated, OTHERS, "blue")], bar_width
        )
        return [
            gauge,
            Text(f"RSS {fmt_bytes(allocated)}"),
            Text(f"peak {fmt_bytes(mem.peak)}"),
            Text(f"machine free {fmt_bytes(mem.free)} of {fmt_bytes(total)}"),
        ]
    parts = [(allocated, FILLED, "green"), (reserved - allocated, RESERVED, "yellow")]
    gauge = stacked_bar(total, parts, bar_width)
    return [
        gauge,
        Text(f"alloc {fmt_bytes(allocated)}"),
        Text(f"reserved {fmt_bytes(reserved)}"),
        Text(f"peak {fmt_bytes(mem.peak)}"),
        Text(f"free {fmt_bytes(mem.free)} of {fmt_bytes(total)}"),
    ]


def _speed_segments_worker(w: WorkerView, width: int, rate: float) -> list[Text]:
    segments = [sparkline(w.throughput, max(min(width // 5, 24), 8))]
    if rate > 0:
        segments.append(Text(f"{fmt_rate(rate)} frames/s", style="bold"))
    elif w.throughput:
        segments.append(Text(f"last shard {fmt_rate(w.throughput[-1])} frames/s"))
    if w.esm_rate:
        segments.append(Text(f"ESM-2 {fmt_rate(w.esm_rate)} proteins/s"))
    if w.dnabert_rate:
        segments.append(Text(f"DNABERT-S {fmt_rate(w.dnabert_rate)} frames/s"))
    segments.append(Text(f"{plural(w.shards_done, 'shard')}, {plural(w.frames_done, 'frame')}"))
    return segments


def _shard_segments(w: WorkerView, width: int) -> list[Text]:
    if w.shard is None:
        return [Text("none", style="dim")]
    name = Text(f"{w.job or '?'} #{w.shard}")
    if w.state != ev.WorkerState.BUSY:
        return [name, Text("done", style="dim")]
    fraction = w.shard_done / w.shard_total if w.shard_total else 0.0
    gauge = bar(fraction, max(min(width // 6, 20), 8))
    return [
        name,
        Text(w.stage or "start"),
        gauge + Text(f" {w.shard_done:,}/{w.shard_total:,} frames"),
    ]


def _cache_segments(w: WorkerView) -> list[Text]:
    segments = [Text(plural(w.cache_clears, "clear"))]
    if w.last_freed is not None:
        segments.append(Text(f"last freed {fmt_bytes(w.last_freed)}", style="bold"))
    segments.append(Text(plural(w.ooms, "OOM split"), style="bold red" if w.ooms else ""))
    return segments


def worker_row(w: WorkerView, width: int, now: float, running: bool, rate: float = 0.0) -> Text:
    """A worker in one line, for when the full panels do not fit: its title (worker, device,
    state) first, so it always shows, then its speed, what it is doing and its memory, cut with
    an ellipsis where the width ends."""
    row = worker_title(w)  # the full panel's title: worker, device and state
    segments: list[Text] = []
    loading = w.loading_model
    if loading is not None and running:
        name, model = loading
        label = MODEL_LABELS.get(name, name)
        segments.insert(0, Text(f"{model_phase(model)} {label} {phase_elapsed(model, now)}"))
    elif w.shard is not None and w.state == ev.WorkerState.BUSY and w.shard_total:
        done = f"{100 * w.shard_done / w.shard_total:.0f}%"
        segments.insert(0, Text(f"{w.job or '?'} #{w.shard} {w.stage or 'start'} {done}"))
    if rate > 0:
        segments.insert(0, Text(f"{fmt_rate(rate)} frames/s", style="bold"))
    if w.memory is not None and w.memory.total and not w.state.ended:
        gauge = _memory_segments(w, 32)[0]  # the panel's bar, at its narrowest
        used = w.memory.allocated if w.memory.kind == "cpu" else w.memory.reserved
        segments.insert(1 if rate > 0 else 0, gauge + Text(f" {fmt_bytes(used)}"))
    if w.restarts:
        segments.insert(0, Text(plural(w.restarts, "restart"), style="bold red"))
    for segment in segments:
        row.append(" · ", style="dim")
        row.append_text(segment)
    row.truncate(width, overflow="ellipsis")
    return row


def panel_height(w: WorkerView, width: int, now: float, running: bool) -> int:
    """The lines of a worker's full panel text at ``width``."""
    return worker_text(w, width, now, running).plain.count("\n") + 1
