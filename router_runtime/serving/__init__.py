"""The serving layer: route -> generate -> fall back -> record, the backends that generate (a
function, llama.cpp), the OpenAI wire format, the HTTP server, Prometheus metrics and calibration.

Nothing here is imported by ``import router_runtime``: the core decides without it, and the top-level
package resolves these names on first use.  ``from router_runtime.serving import RoutingService``
(the path of the single module this package replaces) keeps working: the names that module exported
are re-exported here.  Submodules: ``service`` (RoutingService), ``completion`` (its data),
``stream``, ``signals``, ``writer``, ``backends``, ``llama``, ``openai_api``, ``http``, ``metrics``,
``calibration``.
"""

from .service import AUTO, Attempt, Completion, CompletionStream, RouteOptions, RoutingService, with_load_penalty

__all__ = ["RoutingService", "RouteOptions", "Completion", "CompletionStream", "Attempt", "with_load_penalty",
           "AUTO"]
