"""Reports from workdirs alone: ``build_report(workdirs, out, slides=False)`` (``ycng report``)."""

from ycng_jax._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {"build_report": "build", "read_workdir": "workdir"})
