"""The pool: one persistent worker process per device, its supervision and its event stream.
Imports neither Textual nor (in the parent process) CUDA."""
