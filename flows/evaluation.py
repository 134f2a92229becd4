"""Moved to ``flows.evaluate.holdout``; this path keeps old imports working (it is the same module object)."""
import sys

from .evaluate import holdout as _moved

sys.modules[__name__] = _moved
