"""The models: safe loaders for ESM-2, DNABERT-S and the VirNucPro classifier, compact inference
modules, the demo models, and model lookup. Imports torch; never imports Textual."""
