"""The engine: three loaded models on one device, scoring frames end to end.

``Engine.process_shard`` is the one function that turns a shard into scores (DNABERT-S, ESM-2,
merge, MLP). The headless inline run and every pool worker call exactly this function.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from virnucpro_tui.core.shards import Shard, ShardResult
from virnucpro_tui.core.translation import Frame
from virnucpro_tui.models import reports
from virnucpro_tui.models.batching import BatchStats, PooledForward, embed_token_lists
from virnucpro_tui.models.beside import CompilersBeside
from virnucpro_tui.models.device_memory import (
    default_gpu_token_budget,
    empty_device_cache,
    param_bytes,
)
from virnucpro_tui.models.model_read import onto, read_now, timed
from virnucpro_tui.models.precision import (
    AUTO_GPU_PRECISION,
    DeviceCapability,
    model_precision,
    require_precision_support,
)
from virnucpro_tui.models.settings import EngineSettings, ModelFiles
from virnucpro_tui.models.stage_clock import Progress, StageClock, stage_done, stage_progress
from virnucpro_tui.models.warmup import WARMUP_TOKENS, warm_up, warmup_rows

if TYPE_CHECKING:
    from virnucpro_tui.models.precompile import AheadOfTime

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
STAGES = ("tokenize", "dnabert", "esm", "classifier")


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
    report: reports.Reporter = reports.ignore  # model loads, OOM splits (models/reports.py)
    esm: Any = None
    dnabert: Any = None
    classifier: Any = None
    loads: list[LoadRecord] = field(default_factory=list)
    compiled_into: Path | None = None  # the compile cache's directory, once compiling began
    before_batch: Callable[[str, int], None] | None = None  # (model, batch size): fault injection
    _beside: CompilersBeside | None = field(default=None, repr=False)  # models/beside.py

    @property
    def loaded(self) -> bool:
        return self.classifier is not None

    def load(self) -> None:
        """Load all three models once; later calls do nothing (the worker keeps them). ESM-2 is
        read in its own dtype and moved to the device in a thread while DNABERT-S compiles."""
        if self.loaded:
            return
        self.check_precision()
        from virnucpro_tui.models.classifier import check_chunk_length, load_classifier
        from virnucpro_tui.models.dnabert import load_dnabert
        from virnucpro_tui.models.esm import load_esm

        esm_dtype = engine_dtype(self.settings, self.device, "esm")
        dna_dtype = engine_dtype(self.settings, self.device, "dnabert")
        # One file read at a time (torch.load's allow-list is process-wide state), but ESM-2's
        # 5.7 GB read overlaps DNABERT-S's compilation.
        self._start_side_compiles({"esm": esm_dtype, "dnabert": dna_dtype})
        self._announce("dnabert", dna_dtype)
        dna_read = read_now(load_dnabert, self.files.dnabert)
        with ThreadPoolExecutor(1, thread_name_prefix="esm-read") as reader:
            self._announce("esm", esm_dtype)
            esm_read = reader.submit(
                timed, onto, load_esm, self.files.esm, esm_dtype, self.device, self._staged
            )
            try:
                self.dnabert = self._load("dnabert", dna_read, dna_dtype, announced=True)
                self.esm = self._load("esm", esm_read.result, esm_dtype, announced=True)
            except BaseException:
                self.beside.stop()
                raise
        classifier = self._load(
            "classifier", lambda: timed(load_classifier, self.files.classifier), torch.float32
        )
        check_chunk_length(
            classifier, self.settings.chunk_length, force=self.settings.force_model_length
        )
        self.classifier = classifier
        self._mark_warm()

    def _mark_warm(self, models: tuple[str, ...] = ("dnabert", "esm")) -> None:
        if self.compiled_into is not None and not self.beside.running:
            from virnucpro_tui.models.compile_cache import mark_warm

            mark_warm(self.compiled_into, [self.compile_variant(m) for m in models])

    def finish(self, timeout: float = 20.0) -> None:
        """The run is over: processes beside still compiling get up to ``timeout`` s to save
        the layers, so that the next run starts warm."""
        if self._beside is not None and self._beside.running:
            self._mark_warm(tuple(self._beside.finish(timeout)))

    @property
    def _staged(self) -> bool:
        return self.settings.staged_copy and self.device.type == "cuda"

    def check_precision(self) -> None:
        """Refuse a precision this device cannot run (fp8 on CPU or before compute capability
        8.9, or without torchao) with one line, before any model loads."""
        if self.settings.precision != "fp8":
            return
        name, capability = "CPU", None
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
            capability = torch.cuda.get_device_capability(self.device)
        require_precision_support("fp8", [DeviceCapability(self.device.type, name, capability)])

    def _dtype_label(self, name: str, dtype: torch.dtype) -> str:
        label = str(dtype).removeprefix("torch.")
        fp8 = self.settings.precision == "fp8" and name == "esm" and self.device.type == "cuda"
        return f"float8_e4m3fn+{label}" if fp8 else label

    def _announce(self, name: str, dtype: torch.dtype) -> None:
        source = str(getattr(self.files, name))
        label = self._dtype_label(name, dtype)
        self.report(reports.LoadStarted(model=name, source=source, dtype=label))

    def _load(
        self,
        name: str,
        loader: Callable[[], tuple[Any, float]],
        dtype: torch.dtype,
        announced: bool = False,
    ) -> Any:
        """Read (``loader`` returns the bundle and its reading seconds; ``announced``: its
        ``start`` event went out when the reading began), move to the device, accelerate.
        Reports: ``LoadStarted``, ``WarmupStarted``, ``WarmupDone``, ``ModelLoaded``."""
        source = str(getattr(self.files, name))
        label = self._dtype_label(name, dtype)
        if not announced:
            self._announce(name, dtype)
        try:
            bundle, read_seconds = loader()
            start = time.perf_counter()
            if name == "classifier":
                bundle.model.to(self.device)
            else:  # ESM-2 is on the device already: its reading thread moved it
                bundle = bundle.to(self.device, dtype, staged=self._staged and name == "dnabert")
        except Exception as exc:
            self.report(reports.LoadFailed(model=name, source=source, message=str(exc)))
            raise
        seconds = read_seconds + time.perf_counter() - start
        size = param_bytes(bundle)  # not the allocator's growth: another model loads meanwhile
        compile_s = self._accelerate(name, bundle, dtype)
        record = LoadRecord(name, seconds, size, label, source)
        self.loads.append(record)
        self.report(
            reports.ModelLoaded(
                model=name,
                source=source,
                seconds=round(seconds, 3),
                bytes_on_device=size,
                dtype=record.dtype,
                compile_seconds=compile_s,
                demo=bool(getattr(bundle, "demo", False)),
            )
        )
        return bundle

    def _accelerate(self, name: str, bundle: Any, dtype: torch.dtype) -> float | None:
        """On a GPU in half precision (anywhere with ``settings.compile=True``): the fast
        modules, compiled and warmed up at the main shape; the warm-up is its own phase in the
        reports (``WarmupStarted``/``WarmupDone``)."""
        if name == "classifier" or not self._fast(dtype):
            return None
        from virnucpro_tui.models import compile_cache
        from virnucpro_tui.models.fast import accelerate_as_set

        # cuDNN attention builds a plan per new shape (~0.2 s each): with varying batch shapes
        # that dominated DNABERT-S; flash / memory-efficient kernels need no planning.
        torch.backends.cuda.enable_cudnn_sdp(False)
        compile_ = self.settings.compile is not False
        self._configure_cache()
        if compile_ and self.beside.uncompiled(name):
            self.beside.run_uncompiled(name, bundle)
            return 0.0
        cached = self.compiled_into is not None and compile_cache.is_warm(
            self.compiled_into, self.compile_variant(name)
        )
        start = time.perf_counter()
        source = str(getattr(self.files, name))
        self.report(
            reports.WarmupStarted(model=name, source=source, compile=compile_, cached=cached)
        )
        self.beside.join(name)
        accelerate_as_set(
            name, bundle, compile_, self.settings, self._ahead(name) if compile_ else None
        )
        if compile_ and self.compiled_into is not None:
            compiled_before = [("dnabert", self.dnabert)] if self.dnabert is not None else []
            compile_cache.run_or_recompile(
                lambda: self._warm_up(name, bundle, light=cached),
                self.compiled_into,
                lambda why: self.report(reports.CompileCacheFallback(model=name, message=why)),
                again=lambda: self._warm_up_all(*compiled_before, (name, bundle)),
            )
        seconds = round(time.perf_counter() - start, 3)
        self.report(reports.WarmupDone(model=name, source=source, seconds=seconds))
        return seconds

    def _fast(self, dtype: torch.dtype) -> bool:
        """The fast modules run: on a GPU in half precision, or where ``compile=True`` asks."""
        usual = self.device.type == "cuda" and dtype != torch.float32
        return usual or self.settings.compile is True

    def _configure_cache(self) -> None:
        if self.settings.compile is not False and self.compiled_into is None:
            from virnucpro_tui.models import compile_cache

            key = compile_cache.cache_key(self.device)
            expect = [self.compile_variant(m) for m in ("dnabert", "esm")]
            self.compiled_into = compile_cache.configure(self.settings.compile_cache, key, expect)

    @property
    def precompiles(self) -> bool:
        """Layers compiled ahead of time (``settings.precompile``; by default on a GPU, fp8
        excepted)."""
        asked = self.settings.precompile
        if asked is not None:
            return asked
        return self.device.type == "cuda" and self.settings.precision != "fp8"

    @property
    def beside(self) -> CompilersBeside:
        if self._beside is None:
            asked = self.settings.compile_beside
            uncompiled = self.precompiles and (asked if asked is not None else True)
            self._beside = CompilersBeside(self.settings, self.report, uncompiled)
        return self._beside

    def _start_side_compiles(self, dtypes: dict[str, torch.dtype]) -> None:
        """Compiled ahead of time on a cold cache: ESM-2's layers in a process of their own
        while DNABERT-S compiles here; with ``compile_beside``, DNABERT-S's too, while both
        models run uncompiled (models/beside.py)."""
        if not self.precompiles:
            return
        from virnucpro_tui.models.precompile import has_saved
        from virnucpro_tui.models.side_compile import Target

        for name in ["esm", "dnabert"] if self.beside.meanwhile_uncompiled else ["esm"]:
            if not self._fast(dtypes[name]):
                continue
            self._configure_cache()
            ahead = self._ahead(name)
            if ahead is None or self.compiled_into is None or has_saved(ahead.directory):
                continue
            rows = warmup_rows(name, self._budget(name), self.settings.max_batch)
            target = Target(
                name, self.device, dtypes[name], self.compiled_into, ahead.directory, rows
            )
            self.beside.start(getattr(self.files, name), target)

    def compile_when_ready(self, name: str) -> None:
        """``name`` runs compiled from here on once its process beside is done."""
        if self.beside.compile_when_ready(name, getattr(self, name), self._ahead(name)):
            self._mark_warm()

    def _ahead(self, name: str) -> AheadOfTime | None:
        """Where ``name``'s layers are saved compiled, when it ``precompiles``."""
        if not self.precompiles or self.compiled_into is None:
            return None
        from virnucpro_tui.models.precompile import AheadOfTime, variant_directory

        return AheadOfTime(
            variant_directory(self.compiled_into, self.compile_variant(name)),
            lambda why: self.report(reports.CompileCacheFallback(model=name, message=why)),
        )

    def compile_variant(self, name: str) -> str:
        """What a model's compiled graphs depend on besides torch and the GPU (the cache key);
        compiled ahead of time, a variant is warm only once its layers are saved."""
        s = self.settings
        detail: tuple[object, ...] = (s.exact_gelu, s.esm_attention)
        if name == "dnabert":
            detail = (s.dnabert_attention, *(["glu-kernel"] if s.dnabert_glu_kernel else []))
        elif s.precision == "fp8" and s.fp8_gelu_kernel:
            detail += ("fp8-gelu-kernel",)
        dtype = self._dtype_label(name, engine_dtype(s, self.device, name))
        ahead = ["ahead-of-time"] if self.precompiles else []
        return ":".join(map(str, (name, dtype, *detail, WARMUP_TOKENS[name], *ahead)))

    def _warm_up_all(self, *models: tuple[str, Any]) -> None:
        for name, bundle in models:
            self._warm_up(name, bundle)

    def _warm_up(self, name: str, bundle: Any, light: bool = False) -> None:
        rows = warmup_rows(name, self._budget(name), self.settings.max_batch, light)
        warm_up(name, bundle, rows, self.device)

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

    def embed(
        self,
        model: Literal["dnabert", "esm"],
        seqs: list[str],
        stats: BatchStats | None = None,
        progress: Progress | None = None,
        tokens: list[list[int]] | None = None,
    ) -> torch.Tensor:
        """Pooled embeddings of nucleotide frames by DNABERT-S or of proteins by ESM-2: of
        ``tokens`` when the caller tokenized ``seqs`` already."""
        self.compile_when_ready(model)
        if model == "dnabert":
            dna = self.dnabert
            pad_id, align = dna.pad_id, self._dnabert_align()
            tokens = tokens if tokens is not None else dna.tokenize(seqs)

            def forward(
                ids: torch.Tensor, lengths: torch.Tensor, has_padding: bool
            ) -> torch.Tensor:
                mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]
                return dna.forward_pooled(ids, mask)
        else:
            esm = self.esm
            pad_id, align = esm.alphabet.padding_idx, 1
            tokens = tokens if tokens is not None else esm.tokenize(seqs)

            def forward(
                ids: torch.Tensor, lengths: torch.Tensor, has_padding: bool
            ) -> torch.Tensor:
                return esm.forward_pooled(ids, lengths - 2, has_padding=has_padding)

        return self._embed(model, tokens, forward, pad_id, stats, progress, align)

    def _dnabert_align(self) -> int:
        """Token columns of a DNABERT-S batch round up to a multiple of this: 8 on a GPU with
        the ALiBi bias tensor (an aligned bias needs no copy per layer); FlexAttention (the
        compiled default) builds no bias, and padding columns only cost compute (on the
        bench's frames 5.2% of a batch's tokens aligned, 2.3% not)."""
        flex = getattr(self.dnabert.model, "flex", False)
        return 8 if self.device.type == "cuda" and not flex else 1

    def _embed(
        self,
        model: str,
        tokens: list[list[int]],
        forward: PooledForward,
        pad_id: int,
        stats: BatchStats | None,
        progress: Progress | None,
        align: int = 1,
    ) -> torch.Tensor:
        """One model's stage: ``forward`` over budgeted batches, with the engine's hooks
        (before each batch, on out-of-memory, stage progress)."""

        def hooked(ids: torch.Tensor, lengths: torch.Tensor, has_padding: bool) -> torch.Tensor:
            if self.before_batch is not None:
                self.before_batch(model, ids.shape[0])
            return forward(ids, lengths, has_padding)

        return embed_token_lists(
            tokens,
            hooked,
            pad_id,
            self.device,
            self._budget(model),
            self.settings.max_batch,
            on_oom=self._on_oom(model),
            stats=stats,
            on_batch=stage_progress(model, len(tokens), progress),
            align=align,
        )

    def _on_oom(self, model: str) -> Callable[[int], None]:
        def handler(batch_size: int) -> None:
            freed = empty_device_cache(self.device)
            self.report(reports.OomSplit(model=model, batch_size=batch_size, bytes_freed=freed))

        return handler

    def score_frames(
        self,
        frames: list[Frame],
        stats: BatchStats | None = None,
        progress: Progress | None = None,
        tokens: ShardTokens | None = None,
        clock: StageClock | None = None,
        features_out: list[torch.Tensor] | None = None,
    ) -> np.ndarray:
        """P(others), P(virus) per frame, as float32 (n, 2). ``clock`` gets each stage's
        seconds, taken after the device finished the stage's work; the classifier's input
        (n, dim) is appended to ``features_out`` (on the CPU, float32) when one is given."""
        from virnucpro_tui.models.classifier import predict_proba

        self.load()
        if not frames:
            return np.zeros((0, 2), dtype=np.float32)
        clock = clock or StageClock(self.device)
        n = len(frames)
        with clock("tokenize"):
            tokens = tokens or ShardTokens(None, None)
            dna_tokens = tokens.dna or self.dnabert.tokenize([f.nucleotide for f in frames])
            protein_tokens = tokens.protein or self.esm.tokenize([f.protein for f in frames])
        with clock("dnabert"):
            dna = self.embed("dnabert", [], stats, progress, dna_tokens)
        stage_done(progress, "dnabert", n, clock)
        with clock("esm"):
            protein = self.embed("esm", [], stats, progress, protein_tokens)
        stage_done(progress, "esm", n, clock)
        with clock("classifier"):
            features = torch.cat([dna, protein], dim=1).to(self.device)
            if features_out is not None:
                features_out.append(features.float().cpu())
            probs = predict_proba(self.classifier, features).float().cpu().numpy()
        stage_done(progress, "classifier", n, clock)
        return probs

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
        clock = StageClock(self.device)
        kept: list[torch.Tensor] | None = [] if keep_features else None
        probs = self.score_frames(shard.frames, stats, progress, tokens, clock, features_out=kept)
        return ShardResult(
            shard.job,
            shard.index,
            [f.id for f in shard.frames],
            probs,
            seconds=time.perf_counter() - start,
            tokens=stats.tokens,
            stage_seconds={k: round(v, 4) for k, v in clock.seconds.items()},
            features=kept[0].numpy() if kept else None,
        )


def engine_dtype(settings: EngineSettings, device: torch.device, model: str = "esm") -> torch.dtype:
    """The dtype a model's weights and activations run in (``fp8``: its base around the FP8
    matrix products)."""
    return _DTYPES[model_precision(settings.precision, device.type, model)]


__all__ = ["AUTO_GPU_PRECISION", "Engine", "StageClock", "empty_device_cache", "engine_dtype"]
