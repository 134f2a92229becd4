"""Old path of ``router_runtime.serving.openai_api``: the same module object, so old imports keep working."""
import sys; from .serving import openai_api as _moved; sys.modules[__name__] = _moved  # noqa: E401,E702
