"""The scientific core: FASTA, chunking, six-frame translation and outputs.

Pure functions with no torch and no Textual, so they are cheap to test and to reuse.
"""
