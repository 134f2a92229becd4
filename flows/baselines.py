"""Moved to ``flows.evaluate.baselines``; this path keeps old imports working (it is the same module object)."""
import sys

from .evaluate import baselines as _moved

sys.modules[__name__] = _moved
