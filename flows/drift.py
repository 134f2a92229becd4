"""Moved to ``flows.evaluate.drift``; this path keeps old imports working (it is the same module object)."""
import sys

from .evaluate import drift as _moved

sys.modules[__name__] = _moved
