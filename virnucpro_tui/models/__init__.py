"""The models: safe loaders for ESM-2, DNABERT-S and the VirNucPro classifier, the pre-flight
check of their files, the model identity a run records, compact inference modules, the demo
models, and model lookup. Imports torch; never imports Textual."""
