"""Refuse text no database stores faithfully: NUL characters (PostgreSQL text and JSON reject
them) and lone UTF-16 surrogates (not encodable as UTF-8), in JSON bodies and query strings,
before they reach a route."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from redline.observatory.problems import Rejected


def bad_text(value: str) -> str | None:
    if "\x00" in value:
        return "a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate (not valid Unicode)"
    return None


def _walk(value: Any, where: str) -> None:
    if isinstance(value, str):
        problem = bad_text(value)
        if problem:
            raise Rejected("text", f"{where or 'body'} contains {problem}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(key, where)
            _walk(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, f"{where}[{i}]")


async def clean_text(request: Request) -> None:
    for name, value in request.query_params.multi_items():
        _walk(value, f"query parameter {name}")
    if request.method in ("POST", "PUT", "PATCH") and \
            request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return  # FastAPI answers malformed JSON with 422 itself
        _walk(data, "")
