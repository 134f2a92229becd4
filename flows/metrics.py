"""Moved to ``flows.evaluate.curves``; this path keeps old imports working (it is the same module object)."""
import sys

from .evaluate import curves as _moved

sys.modules[__name__] = _moved
