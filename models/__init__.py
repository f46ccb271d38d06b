"""The model side of Scoregate: package format, artifact store, validation, versions, demo models, marketplace.

Lifecycle modules: :mod:`models.package` (the immutable package archive), :mod:`models.store` (content-addressed
artifact store), :mod:`models.validate` (validation gates and report), :mod:`models.policy` (the pure version
policy), :mod:`models.handle` (harnesses and reader handles), :mod:`models.registry` (what serves; the router seam),
:mod:`models.manager` (the version manager: load, warm, switch, drain, unload).

Importing this package is cheap and has no side effects: the heavy trainers (LightGBM, scikit-learn, the ONNX
converters) are imported only by :mod:`models.demo` when a build runs.

Dependency rule: ``models`` never imports ``gateway``, ``jvm_bridge`` or ``cache``.
"""
