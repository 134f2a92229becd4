"""Moved to ``flows.evaluate.benchmark``; this path keeps old imports working (it is the same module object)."""
import sys

from .evaluate import benchmark as _moved

sys.modules[__name__] = _moved
