"""The measuring commands: ``bench`` (``bench``, with its GPU side in the spawned child
``bench_child``) and ``check-precision`` (``check_precision``). Each keeps CUDA in a child
process, like the orchestrator (docs/benchmarks.md, docs/precision.md)."""
