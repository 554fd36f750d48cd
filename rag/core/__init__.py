"""The kernel: what every layer above may import, and which imports nothing above it.

Errors and their exit codes, settings, the plain data types that cross seams, safe files,
thread pools, the plugin registry, and text helpers. `indexers` builds on this, the
application (the rest of `rag`) on both, `evals` on all three; the import contracts in
pyproject.toml (`[tool.importlinter]`, checked by tests/test_layers.py) hold the order.
"""
