"""Moved to ``flows.evaluate.offpolicy``; this path keeps old imports working (it is the same module object)."""
import sys

from .evaluate import offpolicy as _moved

sys.modules[__name__] = _moved
