"""GPU telemetry for the main process through NVML, looked up by device UUID (no CUDA init)."""

from __future__ import annotations

import contextlib
from typing import Any


class NvmlTelemetry:
    """Reads utilisation, memory, temperature and power of the pool's GPUs by UUID."""

    def __init__(self, uuids: list[str]) -> None:
        self.uuids = [u for u in uuids if u]
        self._handles: dict[str, Any] = {}
        self._nvml: Any = None
        if not self.uuids:
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            for uuid in self.uuids:
                self._handles[uuid] = pynvml.nvmlDeviceGetHandleByUUID(uuid)
        except Exception:  # noqa: BLE001 - telemetry is best effort
            self._handles.clear()

    def sample(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        nv = self._nvml
        for uuid, h in self._handles.items():
            try:
                util = nv.nvmlDeviceGetUtilizationRates(h)
                mem = nv.nvmlDeviceGetMemoryInfo(h)
                reading: dict[str, Any] = {
                    "gpu_util": int(util.gpu),
                    "mem_util": int(util.memory),
                    "memory_used": int(mem.used),
                    "memory_total": int(mem.total),
                }
                try:
                    reading["temperature_c"] = int(
                        nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)
                    )
                    reading["power_w"] = round(nv.nvmlDeviceGetPowerUsage(h) / 1000.0, 1)
                except Exception:  # noqa: BLE001
                    pass
                out[uuid] = reading
            except Exception:  # noqa: BLE001
                continue
        return out

    def close(self) -> None:
        if self._nvml is not None and self._handles:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
        self._handles.clear()
