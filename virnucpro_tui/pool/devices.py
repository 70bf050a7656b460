"""Which devices the pool runs on, found through NVML so the main process never touches CUDA.

``--devices auto`` takes every visible GPU (honouring ``CUDA_VISIBLE_DEVICES``), or one CPU
worker when there is none; ``0,2`` takes those GPUs; ``cpu:N`` runs N CPU workers.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from virnucpro_tui.errors import InputError
from virnucpro_tui.models.precision import DeviceCapability


@dataclass(frozen=True)
class DeviceSlot:
    """One worker's device. ``uuid`` pins a GPU worker to its physical GPU."""

    worker: int
    kind: str  # "cuda" or "cpu"
    index: int | None = None  # NVML (physical) index
    uuid: str | None = None
    name: str = "CPU"

    @property
    def label(self) -> str:
        return (
            f"GPU {self.index} ({self.name})"
            if self.kind == "cuda"
            else f"CPU worker {self.worker}"
        )


@dataclass(frozen=True)
class GpuInfo:
    index: int
    uuid: str
    name: str
    memory_total: int
    capability: tuple[int, int] | None = None  # CUDA compute capability, from NVML


def nvml_gpus() -> list[GpuInfo]:
    """All GPUs NVML sees (physical order); empty without a driver."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver, no GPUs
        return []
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            uuid = pynvml.nvmlDeviceGetUUID(h)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h).total
            gpus.append(GpuInfo(i, _text(uuid), _text(name), int(mem), _capability(pynvml, h)))
        return gpus
    finally:
        pynvml.nvmlShutdown()


def _capability(pynvml: object, handle: object) -> tuple[int, int] | None:
    try:
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - an old driver: the worker checks again with CUDA
        return None
    return int(major), int(minor)


def device_capabilities(spec: str, gpus: list[GpuInfo] | None = None) -> list[DeviceCapability]:
    """What each worker's device of ``--devices spec`` can do, without initialising CUDA."""
    gpus = nvml_gpus() if gpus is None else gpus
    by_index = {g.index: g for g in gpus}
    return [
        DeviceCapability(
            slot.kind,
            slot.name,
            by_index[slot.index].capability if slot.index in by_index else None,
        )
        for slot in resolve_devices(spec, gpus)
    ]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _visible(gpus: list[GpuInfo]) -> list[GpuInfo]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return gpus
    chosen = []
    for item in filter(None, (x.strip() for x in env.split(","))):
        if item.isdigit() and int(item) < len(gpus):
            chosen.append(gpus[int(item)])
        else:
            chosen.extend(g for g in gpus if g.uuid.startswith(item))
    return chosen


def resolve_devices(spec: str, gpus: list[GpuInfo] | None = None) -> list[DeviceSlot]:
    spec = spec.strip().lower()
    gpus = nvml_gpus() if gpus is None else gpus
    if spec == "auto":
        visible = _visible(gpus)
        if not visible:
            return [DeviceSlot(0, "cpu")]
        return [DeviceSlot(w, "cuda", g.index, g.uuid, g.name) for w, g in enumerate(visible)]
    if m := re.fullmatch(r"cpu(?::(\d+))?", spec):
        n = int(m.group(1) or 1)
        if not 1 <= n <= 256:
            raise InputError(f"--devices {spec}: the number of CPU workers must be 1..256")
        return [DeviceSlot(w, "cpu") for w in range(n)]
    if re.fullmatch(r"\d+(,\d+)*", spec):
        by_index = {g.index: g for g in gpus}
        wanted = [int(x) for x in spec.split(",")]
        missing = [i for i in wanted if i not in by_index]
        if missing:
            have = ", ".join(f"{g.index} ({g.name})" for g in gpus) or "none"
            raise InputError(
                f"--devices {spec}: no GPU {missing[0]} on this machine (GPUs: {have})"
            )
        if len(set(wanted)) != len(wanted):
            raise InputError(f"--devices {spec}: a GPU is listed twice")
        return [
            DeviceSlot(w, "cuda", i, by_index[i].uuid, by_index[i].name)
            for w, i in enumerate(wanted)
        ]
    raise InputError(f"--devices {spec!r}: expected auto, cpu:N or GPU indices like 0,1")
