"""Resolve a target URI to a ``Target``.

``http://host:port/v1`` and ``https://…`` speak the OpenAI chat API; ``openai:MODEL`` is
the same against ``$OPENAI_BASE_URL`` (default api.openai.com); ``local:smollm2`` loads the
embedded model. Other schemes come from the ``redline.targets`` entry-point group, whose
entries are factories ``(uri: str, options: TargetOptions) -> Target``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from redline.models.errors import TargetConfigError
from redline.models.target import Target
from redline.registry import Registry, UnknownPluginError


class TargetOptions(BaseModel):
    """Options that apply to any target; adapters ignore those they do not use."""

    model_config = ConfigDict(extra="forbid")

    #: Model name to request from an HTTP endpoint (``model`` field of the request).
    model: str | None = None
    #: Name of the environment variable holding the API key.
    api_key_env: str = "OPENAI_API_KEY"
    connect_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    #: Prepended to every conversation that has no system message of its own.
    system_prompt: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


TargetFactory = Callable[[str, TargetOptions], Target]

targets: Registry[TargetFactory] = Registry("target")

#: Built-in schemes, imported on first use so that ``http://`` never pays for torch.
_BUILTIN: dict[str, str] = {
    "http": "redline.models.openai_http:from_uri",
    "https": "redline.models.openai_http:from_uri",
    "openai": "redline.models.openai_http:from_uri",
    "local": "redline.models.local:from_uri",
    "guard": "redline.guard.target:from_uri",
}


def _builtin_factory(scheme: str) -> TargetFactory | None:
    spec = _BUILTIN.get(scheme)
    if spec is None:
        return None
    module, attr = spec.split(":")
    factory: TargetFactory = getattr(importlib.import_module(module), attr)
    return factory


def scheme_of(uri: str) -> str:
    """The text before the first colon (``guard:POLICY+http://…`` is a ``guard`` URI)."""
    if ":" in uri:
        return uri.split(":", 1)[0].lower()
    raise TargetConfigError(
        f"target {uri!r} has no scheme; use e.g. local:smollm2, http://HOST:PORT/v1 "
        "or openai:MODEL"
    )


def resolve_target(uri: str, options: TargetOptions | None = None) -> Target:
    """Build the target a URI names."""
    opts = options or TargetOptions()
    scheme = scheme_of(uri)
    factory = _builtin_factory(scheme)
    if factory is None:
        try:
            factory = targets.get(scheme)
        except UnknownPluginError:
            known = ", ".join(sorted({*_BUILTIN, *targets.names()}))
            raise TargetConfigError(
                f"target {uri!r}: unknown scheme {scheme!r}; known: {known}"
            ) from None
    return factory(uri, opts)
