"""Tool calls, the way llama-cpp-python does them: the tools go into the model's chat template, and a
call the request forces is generated under a grammar built from the function's JSON schema.

================  ========================================================================
tool_choice       what the model does
================  ========================================================================
"auto" (default)  sees the tools through its chat template and answers in text (llama-cpp-python's
                  generic chat handler parses no free-text tool call either)
"none"            answers in text; the tools are not shown
"required"        must call one of the tools: the output is constrained to
                  ``{"name": <one of the tools>, "arguments": <its parameters>}``
{"type": "function", "function": {"name": N}}
                  must call N: the output is constrained to N's parameters (its arguments)
================  ========================================================================

A request whose tools may be called ("auto", "required", a function) routes only to models whose
pool entry declares the capability ``tools`` (``TOOLS_CAPABILITY``).  The answer of a forced call is
the generated JSON, returned as the message's ``tool_calls`` with finish_reason "tool_calls".
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from ..errors import ContractError

__all__ = ["TOOLS_CAPABILITY", "parse_tools", "output_schema", "tool_calls", "needs_tools"]

TOOLS_CAPABILITY = "tools"
_MAX_TOOLS = 128


def parse_tools(tools: Any, tool_choice: Any) -> tuple[tuple[dict, ...], str, str | None]:
    """The body's ``tools`` and ``tool_choice`` checked: (tools, choice, forced function name)."""
    if tools is None or tools == []:
        tools = []
    if not isinstance(tools, list) or len(tools) > _MAX_TOOLS:
        raise ContractError("tools", f"must be a list of at most {_MAX_TOOLS} tools")
    names = []
    for i, t in enumerate(tools):
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(t.get("function"), dict):
            raise ContractError(f"tools[{i}]", 'must be {"type": "function", "function": {"name": ...}}')
        fn = t["function"]
        unknown = sorted(set(fn) - {"name", "description", "parameters", "strict"})
        if unknown:
            raise ContractError(f"tools[{i}].function.{unknown[0]}", "unrecognized field")
        name = fn.get("name")
        if not isinstance(name, str) or not name or len(name) > 64:
            raise ContractError(f"tools[{i}].function.name", "must be a string of 1 to 64 characters")
        if name in names:
            raise ContractError(f"tools[{i}].function.name", f"{name!r} is defined twice")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise ContractError(f"tools[{i}].function.parameters", "must be a JSON schema object")
        if fn.get("description") is not None and not isinstance(fn["description"], str):
            raise ContractError(f"tools[{i}].function.description", "must be a string")
        names.append(name)
    if tool_choice is None:
        choice, forced = ("auto" if tools else "none"), None
    elif tool_choice in ("auto", "none", "required"):
        choice, forced = tool_choice, None
    elif isinstance(tool_choice, dict) and tool_choice.get("type") == "function" \
            and isinstance(tool_choice.get("function"), dict):
        choice, forced = "function", tool_choice["function"].get("name")
        if forced not in names:
            raise ContractError("tool_choice", f"names the function {forced!r}, which is not among the tools "
                                               f"({', '.join(names) or 'none given'})")
    else:
        raise ContractError("tool_choice", 'must be "auto", "none", "required" or '
                                           '{"type": "function", "function": {"name": ...}}')
    if choice == "required" and not tools:
        raise ContractError("tool_choice", '"required" needs at least one tool')
    if choice == "none":
        return (), "none", None
    return tuple(tools), choice, forced


def needs_tools(tools: Sequence[Mapping[str, Any]], choice: str) -> bool:
    """Whether the request may call a tool (then it routes to tool-capable models only)."""
    return bool(tools) and choice != "none"


def _parameters(tool: Mapping[str, Any]) -> dict:
    return dict(tool["function"].get("parameters") or {"type": "object"})


def output_schema(tools: Sequence[Mapping[str, Any]], choice: str, forced: str | None) -> dict | None:
    """The JSON schema a forced or required call's output follows; None when the text is free."""
    if choice == "function":
        return _parameters(next(t for t in tools if t["function"]["name"] == forced))
    if choice == "required":
        variants = [{"type": "object", "properties": {"name": {"const": t["function"]["name"]},
                                                      "arguments": _parameters(t)},
                     "required": ["name", "arguments"]} for t in tools]
        return variants[0] if len(variants) == 1 else {"anyOf": variants}
    return None


def tool_calls(choice: str, forced: str | None, text: str, call_id: str) -> list[dict] | None:
    """The OpenAI ``tool_calls`` of an answer; None when the request forced no call or the output is
    not the call's JSON (a truncated answer: its record says invalid JSON)."""
    if choice not in ("function", "required"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if choice == "function":
        name, args = forced, value
    else:
        if not isinstance(value, dict) or not isinstance(value.get("name"), str) or "arguments" not in value:
            return None
        name, args = value["name"], value["arguments"]
    return [{"id": f"call_{call_id}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)}}]
