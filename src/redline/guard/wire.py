"""The OpenAI chat-completions shapes the proxy reads and writes.

The proxy forwards upstream bytes untouched whenever it allows them; these helpers only
extract what the checks need and build the guard's own replies (blocked, held, cut off).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from redline.guard.decision import Decision, client_message
from redline.records.chat import ChatMessage, ToolCall


class WireError(ValueError):
    """A request body the proxy cannot read; becomes a 400."""


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and isinstance(p.get("text"), str))
    raise WireError("message content must be a string, null or a list of parts")


def request_messages(body: Any) -> list[ChatMessage]:
    """The conversation of a chat-completions request, as the checks see it."""
    if not isinstance(body, dict):
        raise WireError("the request body must be a JSON object")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise WireError("'messages' must be a non-empty list")
    out: list[ChatMessage] = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise WireError(f"messages[{i}] must be an object")
        given = m.get("role")
        role = "system" if given == "developer" else given
        if role not in ("system", "user", "assistant", "tool"):
            raise WireError(f"messages[{i}].role {m.get('role')!r} is not supported")
        out.append(ChatMessage(role=role, content=_text(m.get("content")),
                               tool_calls=completion_tool_calls(m)))
    return out


def completion_tool_calls(message: dict[str, Any]) -> list[ToolCall]:
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise WireError("tool_calls must be a list")
    out: list[ToolCall] = []
    for i, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise WireError(f"tool_calls[{i}] needs function.name")
        args = fn.get("arguments", "{}")
        out.append(ToolCall(id=str(call.get("id") or f"call_{i}"), name=fn["name"],
                            arguments=args if isinstance(args, str) else json.dumps(args)))
    return out


def completion_message(body: Any) -> dict[str, Any]:
    """The first choice's message of an upstream completion."""
    try:
        message = body["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise WireError("upstream reply has no choices[0].message") from None
    if not isinstance(message, dict):
        raise WireError("upstream choices[0].message is not an object")
    return message


def redline_field(decision: Decision) -> dict[str, Any]:
    """What clients may learn about a decision: action, red lines, review id."""
    out: dict[str, Any] = {"decision": decision.action, "red_lines": decision.red_lines()}
    if decision.review_id:
        out["review_id"] = decision.review_id
    return out


def stopped_completion(decision: Decision, model: str) -> dict[str, Any]:
    """A well-formed chat completion saying the content was stopped, and why."""
    return {
        "id": "chatcmpl-guard-" + secrets.token_hex(8),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": client_message(decision)},
            "finish_reason": "content_filter",
        }],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "redline": redline_field(decision),
    }


def stop_chunk(decision: Decision, model: str, chunk_id: str) -> dict[str, Any]:
    """The last chunk of a stream the guard cut: the reason as text, finish ``content_filter``."""
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": {"content": "\n\n" + client_message(decision)},
                     "finish_reason": "content_filter"}],
        "redline": redline_field(decision),
    }


def text_chunk(text: str, model: str, chunk_id: str) -> dict[str, Any]:
    return {"id": chunk_id, "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


def sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


def error_body(message: str, type_: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code, "param": None}}
