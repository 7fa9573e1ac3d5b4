"""redline: make AI red lines verifiable.

The public API, importable from here; names load lazily, so ``import redline`` never pulls in
torch or a web server:

    from redline import Guard, Scope, load_policy

    guard = await Guard.open(load_policy("idais"), store="sqlite:guard.sqlite")
    decision = await guard.check_input(messages, Scope(principal="alice"))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from redline._version import __version__

if TYPE_CHECKING:
    from redline.guard.decision import Decision
    from redline.guard.engine import Guard, Scope
    from redline.guard.output_stream import OutputStream
    from redline.models.registry import TargetOptions, resolve_target
    from redline.policy.load import load_policy
    from redline.policy.model import Policy
    from redline.records.chat import ChatMessage, GenerateConfig, ModelOutput

#: Public name → defining module.
_EXPORTS = {
    "Guard": "redline.guard.engine",
    "Scope": "redline.guard.engine",
    "OutputStream": "redline.guard.output_stream",
    "Decision": "redline.guard.decision",
    "load_policy": "redline.policy.load",
    "Policy": "redline.policy.model",
    "resolve_target": "redline.models.registry",
    "TargetOptions": "redline.models.registry",
    "ChatMessage": "redline.records.chat",
    "GenerateConfig": "redline.records.chat",
    "ModelOutput": "redline.records.chat",
}

__all__ = [
    "ChatMessage",
    "Decision",
    "GenerateConfig",
    "Guard",
    "ModelOutput",
    "OutputStream",
    "Policy",
    "Scope",
    "TargetOptions",
    "__version__",
    "load_policy",
    "resolve_target",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'redline' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
