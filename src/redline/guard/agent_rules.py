"""Agent tool-call rules beyond tripwires: replication needs a registered instance, egress
goes only to listed hosts.

Pure functions over the policy's ``AgentRules``; the guard supplies the registry lookups.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from redline.policy.model import AgentRules

#: The argument a replication call must carry: the id of an instance registered beforehand.
INSTANCE_ARG = "instance_id"
#: Argument names whose value is a host name rather than a URL.
HOST_ARGS = frozenset({"host", "hostname", "domain", "server", "remote_host"})
_URL = re.compile(r"\b(?:https?|ftp|wss?|ssh|sftp|s3|gs)://[^\s\"'<>]+", re.IGNORECASE)
#: scp/rsync style ``user@host:path``.
_SCP = re.compile(r"\b[\w.-]+@([\w.-]+):")


def is_replication(rules: AgentRules, tool: str) -> bool:
    return any(fnmatch.fnmatchcase(tool, glob) for glob in rules.replication_tools)


def requested_instance(args: dict[str, Any]) -> str | None:
    value = args.get(INSTANCE_ARG)
    return value if isinstance(value, str) and value else None


def _strings(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, key)


def hosts_in(args: dict[str, Any]) -> list[str]:
    """Every host a tool call's arguments point at: URLs anywhere, scp-style targets, and
    values of host-like arguments."""
    found: list[str] = []
    for key, text in _strings(args):
        if key.lower() in HOST_ARGS and text.strip():
            found.append(text.strip().lower())
        for url in _URL.findall(text):
            host = urlsplit(url).hostname
            if host:
                found.append(host.lower())
        found.extend(m.lower() for m in _SCP.findall(text))
    return list(dict.fromkeys(found))


def _allowed(rules: AgentRules, host: str) -> bool:
    try:
        host = str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        host = host.rstrip(".")
    return any(fnmatch.fnmatchcase(host, glob.lower()) for glob in rules.egress_allow)


def disallowed_hosts(rules: AgentRules, args: dict[str, Any]) -> list[str]:
    """Hosts in the arguments that egress rules do not allow (none when unrestricted)."""
    if not rules.egress_allow:
        return []
    return [h for h in hosts_in(args) if not _allowed(rules, h)]
