"""GPU telemetry for the run: each worker's GPU sampled through NVML every few seconds, as
``gpu`` events (the main process reads NVML only, never CUDA)."""

from __future__ import annotations

import time

from virnucpro_tui.pool import events as ev
from virnucpro_tui.pool.devices import DeviceSlot
from virnucpro_tui.pool.telemetry import NvmlTelemetry


class TelemetrySampler:
    def __init__(self, slots: list[DeviceSlot], every_s: float, emit: ev.EventSink) -> None:
        self.slots, self.every_s, self.emit = slots, every_s, emit
        self.nvml = NvmlTelemetry([s.uuid for s in slots if s.uuid])
        self._last = 0.0

    def sample(self) -> None:
        """Emit a reading per GPU worker, at most once every ``every_s`` seconds."""
        now = time.time()
        if now - self._last < self.every_s:
            return
        self._last = now
        readings = self.nvml.sample()
        for slot in self.slots:
            if slot.uuid in readings:
                self.emit(
                    ev.GpuTelemetry(
                        worker=slot.worker, uuid=slot.uuid, index=slot.index, **readings[slot.uuid]
                    )
                )

    def close(self) -> None:
        self.nvml.close()
