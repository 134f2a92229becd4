"""Moved to ``flows.train`` (the training flow); this path keeps old imports, ``python -m flows.pipeline``
and ``flows/pipeline.py:train_router`` entrypoints working (it is the same module object)."""
import sys

from flows import train as _moved

if __name__ == "__main__":
    _moved.main()
else:
    sys.modules[__name__] = _moved
