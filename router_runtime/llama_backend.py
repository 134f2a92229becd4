"""Old path of ``router_runtime.serving.llama``: the same module object, so old imports keep working."""
import sys; from .serving import llama as _moved; sys.modules[__name__] = _moved  # noqa: E401,E702
