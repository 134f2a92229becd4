"""Old path of ``router_runtime.serving.calibration``: the same module object, so old imports keep working."""
import sys; from .serving import calibration as _moved; sys.modules[__name__] = _moved  # noqa: E401,E702
