"""The model side of Scoregate: package format, demo models and the synthetic marketplace.

Importing this package is cheap and has no side effects: the heavy trainers (LightGBM, scikit-learn, the ONNX
converters) are imported only by :mod:`models.demo` when a build runs.

Dependency rule: ``models`` never imports ``gateway``, ``jvm_bridge`` or ``cache``.
"""
