"""Search for the fastest offload pattern: which regions run on the GPU, with which launch settings.

The search is independent of how a configuration is measured: a strategy proposes
configurations of a `Space`, an `Objective` measures them, and an Optuna study keeps every
result so a search can be resumed and no configuration is measured twice.

Nothing here is imported by `offloader/__init__`, and the modules that need Optuna import it
themselves, so `import offloader` stays light (tests/test_lazy_imports.py).
"""
