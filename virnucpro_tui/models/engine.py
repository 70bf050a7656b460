"""The engine: three loaded models on one device, scoring frames end to end.

``Engine.process_shard`` is the one function that turns a shard into scores (DNABERT-S, ESM-2,
merge, MLP). The headless inline run and every pool worker call exactly this function.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from virnucpro_tui.core.shards import Shard, ShardResult
from virnucpro_tui.core.translation import Frame
from virnucpro_tui.models.batching import BatchStats, embed_token_lists
from virnucpro_tui.models.settings import EngineSettings, ModelFiles

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

Progress = Callable[[str, int, int, int], None]
"""``progress(stage, items_done, items_total, tokens)`` after each batch of a stage."""
Emit = Callable[..., None]
"""``emit(event_type, **fields)``: where the engine reports model loads and OOM splits."""


def _no_emit(_type: str, **_fields: Any) -> None:
    return None


@dataclass
class ShardTokens:
    dna: list[list[int]] | None
    protein: list[list[int]] | None


@dataclass
class LoadRecord:
    model: str
    seconds: float
    bytes_on_device: int
    dtype: str
    source: str


@dataclass
class Engine:
    files: ModelFiles
    device: torch.device
    settings: EngineSettings = field(default_factory=EngineSettings)
    emit: Emit = _no_emit
    esm: Any = None
    dnabert: Any = None
    classifier: Any = None
    loads: list[LoadRecord] = field(default_factory=list)
    before_batch: Callable[[str, int], None] | None = None  # (model, batch size): fault injection

    @property
    def loaded(self) -> bool:
        return self.classifier is not None

    def load(self) -> None:
        """Load all three models once; later calls do nothing (the worker keeps them)."""
        if self.loaded:
            return
        from virnucpro_tui.models.classifier import check_chunk_length, load_classifier
        from virnucpro_tui.models.dnabert import load_dnabert
        from virnucpro_tui.models.esm import load_esm

        self.dnabert = self._load(
            "dnabert",
            lambda: load_dnabert(self.files.dnabert),
            engine_dtype(self.settings, self.device, "dnabert"),
        )
        self.esm = self._load(
            "esm", lambda: load_esm(self.files.esm), engine_dtype(self.settings, self.device, "esm")
        )
        classifier = self._load(
            "classifier", lambda: load_classifier(self.files.classifier), torch.float32
        )
        check_chunk_length(
            classifier, self.settings.chunk_length, force=self.settings.force_model_length
        )
        self.classifier = classifier

    def _load(self, name: str, loader: Callable[[], Any], dtype: torch.dtype) -> Any:
        source = str(getattr(self.files, name))
        self.emit(
            "model_load",
            model=name,
            phase="start",
            source=source,
            dtype=str(dtype).removeprefix("torch."),
        )
        before = _device_bytes(self.device)
        start = time.perf_counter()
        try:
            bundle = loader()
            bundle = bundle.to(self.device, dtype) if hasattr(bundle, "to") else bundle
        except Exception as exc:
            self.emit("model_load", model=name, phase="error", source=source, message=str(exc))
            raise
        if name == "classifier":
            bundle.model.to(self.device)
        seconds = time.perf_counter() - start
        size = max(_device_bytes(self.device) - before, 0) or _param_bytes(bundle)
        compile_s = self._accelerate(name, bundle, dtype)
        record = LoadRecord(name, seconds, size, str(dtype).removeprefix("torch."), source)
        self.loads.append(record)
        self.emit(
            "model_load",
            model=name,
            phase="done",
            seconds=round(seconds, 3),
            bytes_on_device=size,
            dtype=record.dtype,
            source=source,
            compile_seconds=compile_s,
            fast_path=compile_s is not None,
            demo=bool(getattr(bundle, "demo", False)),
        )
        return bundle

    def _accelerate(self, name: str, bundle: Any, dtype: torch.dtype) -> float | None:
        """On a GPU in half precision: the fast modules, compiled and warmed up at the main shape."""
        if name == "classifier" or self.device.type != "cuda" or dtype == torch.float32:
            return None
        from virnucpro_tui.models.fast import accelerate_dnabert, accelerate_esm

        # cuDNN attention builds a plan per new shape (~0.2 s each): with varying batch shapes
        # that dominated DNABERT-S; flash / memory-efficient kernels need no planning.
        torch.backends.cuda.enable_cudnn_sdp(False)

        compile_ = self.settings.compile is not False
        (accelerate_esm if name == "esm" else accelerate_dnabert)(bundle, compile_)
        start = time.perf_counter()
        if compile_:
            self._warm_up(name, bundle)
        return round(time.perf_counter() - start, 3)

    def _warm_up(self, name: str, bundle: Any) -> None:
        """Run one batch of the typical shape so compilation happens now, not mid-shard."""
        length = WARMUP_TOKENS[name]
        rows = max(1, min(self._budget(name) // length, self.settings.max_batch))
        ids = torch.randint(4, 24, (rows, length), dtype=torch.long)
        if name == "esm":
            ids[:, 0], ids[:, -1] = bundle.alphabet.cls_idx, bundle.alphabet.eos_idx
            bundle.forward_pooled(ids, torch.full((rows,), length - 2))
        else:
            bundle.forward_pooled(ids, torch.full((rows,), length))
        torch.cuda.synchronize(self.device)

    def _budget(self, which: str) -> int:
        explicit = (
            self.settings.esm_max_tokens if which == "esm" else self.settings.dnabert_max_tokens
        )
        if explicit:
            return explicit
        if self.device.type == "cpu":
            return 4096 if which == "esm" else 16384
        return default_gpu_token_budget(self.device, which)

    def tokenize(self, frames: list[Frame]) -> ShardTokens:
        """Both models' token ids for these frames (CPU work; a worker runs it for the next
        shard while the GPU computes the current one)."""
        self.load()
        return ShardTokens(
            self.dnabert.tokenize([f.nucleotide for f in frames]),
            self.esm.tokenize([f.protein for f in frames]),
        )

    def embed_dna(
        self,
        seqs: list[str],
        stats: BatchStats | None = None,
        progress: Progress | None = None,
        tokens: list[list[int]] | None = None,
    ) -> torch.Tensor:
        bundle = self.dnabert

        def forward(ids: torch.Tensor, lengths: torch.Tensor, _has_padding: bool) -> torch.Tensor:
            self._before("dnabert", ids.shape[0])
            mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]
            return bundle.forward_pooled(ids, mask)

        tokens = tokens if tokens is not None else bundle.tokenize(seqs)
        return embed_token_lists(
            tokens,
            forward,
            bundle.pad_id,
            self.device,
            self._budget("dnabert"),
            self.settings.max_batch,
            on_oom=self._on_oom("dnabert"),
            stats=stats,
            on_batch=_stage_progress("dnabert", len(seqs), progress),
            align=8 if self.device.type == "cuda" else 1,
        )

    def embed_proteins(
        self,
        seqs: list[str],
        stats: BatchStats | None = None,
        progress: Progress | None = None,
        tokens: list[list[int]] | None = None,
    ) -> torch.Tensor:
        bundle = self.esm

        def forward(ids: torch.Tensor, lengths: torch.Tensor, has_padding: bool) -> torch.Tensor:
            self._before("esm", ids.shape[0])
            return bundle.forward_pooled(ids, lengths - 2, has_padding=has_padding)

        tokens = tokens if tokens is not None else bundle.tokenize(seqs)
        return embed_token_lists(
            tokens,
            forward,
            bundle.alphabet.padding_idx,
            self.device,
            self._budget("esm"),
            self.settings.max_batch,
            on_oom=self._on_oom("esm"),
            stats=stats,
            on_batch=_stage_progress("esm", len(seqs), progress),
        )

    def _before(self, model: str, batch_size: int) -> None:
        if self.before_batch is not None:
            self.before_batch(model, batch_size)

    def _on_oom(self, model: str) -> Callable[[int], None]:
        def handler(batch_size: int) -> None:
            freed = empty_device_cache(self.device)
            self.emit("oom", model=model, batch_size=batch_size, action="split", bytes_freed=freed)

        return handler

    def score_frames(
        self,
        frames: list[Frame],
        stats: BatchStats | None = None,
        progress: Progress | None = None,
        tokens: ShardTokens | None = None,
        features_out: list[torch.Tensor] | None = None,
    ) -> np.ndarray:
        """P(others), P(virus) per frame, as float32 (n, 2); the classifier's input (n, dim)
        is appended to ``features_out`` (on the CPU, float32) when one is given."""
        from virnucpro_tui.models.classifier import predict_proba

        self.load()
        if not frames:
            return np.zeros((0, 2), dtype=np.float32)
        tokens = tokens or ShardTokens(None, None)
        dna = self.embed_dna([f.nucleotide for f in frames], stats, progress, tokens.dna)
        protein = self.embed_proteins([f.protein for f in frames], stats, progress, tokens.protein)
        features = torch.cat([dna, protein], dim=1).to(self.device)
        if features_out is not None:
            features_out.append(features.float().cpu())
        return predict_proba(self.classifier, features).float().cpu().numpy()

    def process_shard(
        self,
        shard: Shard,
        progress: Progress | None = None,
        tokens: ShardTokens | None = None,
        keep_features: bool = False,
    ) -> ShardResult:
        """Score one shard end to end; with ``keep_features`` the result carries the 3328-value
        features too (``run --save-features``)."""
        start = time.perf_counter()
        stats = BatchStats()
        kept: list[torch.Tensor] | None = [] if keep_features else None
        probs = self.score_frames(shard.frames, stats, progress, tokens, features_out=kept)
        return ShardResult(
            shard.job,
            shard.index,
            [f.id for f in shard.frames],
            probs,
            seconds=time.perf_counter() - start,
            tokens=stats.tokens,
            features=kept[0].numpy() if kept else None,
        )


def _stage_progress(
    stage: str, total: int, progress: Progress | None
) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    done = 0

    def on_batch(items: int, tokens: int) -> None:
        nonlocal done
        done += items
        progress(stage, done, total, tokens)

    return on_batch


# Half precision chosen per model by measured fidelity against fp32 (docs/benchmarks.md).
AUTO_GPU_PRECISION = {"esm": "fp16", "dnabert": "bf16"}
WARMUP_TOKENS = {"esm": 168, "dnabert": 112}  # 166-aa proteins; ~500-bp frames in DNABERT-S BPE


def engine_dtype(settings: EngineSettings, device: torch.device, model: str = "esm") -> torch.dtype:
    if settings.precision == "auto":
        return _DTYPES[AUTO_GPU_PRECISION[model]] if device.type == "cuda" else torch.float32
    return _DTYPES[settings.precision]


def _device_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    return 0


def _param_bytes(bundle: Any) -> int:
    module = getattr(bundle, "model", None) or getattr(bundle, "encoder", None)
    if module is None:
        return 0
    return sum(p.numel() * p.element_size() for p in module.parameters())


def empty_device_cache(device: torch.device) -> int:
    """Release cached blocks; return the bytes of reserved memory given back."""
    if device.type != "cuda":
        return 0
    before = torch.cuda.memory_reserved(device)
    torch.cuda.empty_cache()
    return max(int(before - torch.cuda.memory_reserved(device)), 0)


def default_gpu_token_budget(device: torch.device, which: str) -> int:
    """Tokens per batch, sized from the device's total memory (not its free memory, so the same
    card always cuts the same batches and results stay byte-identical across runs)."""
    total_gib = torch.cuda.get_device_properties(device).total_memory / 2**30
    per_gib = 512 if which == "esm" else 2048
    return int(min(max(total_gib * per_gib, 8192), 262144 if which == "dnabert" else 131072))
