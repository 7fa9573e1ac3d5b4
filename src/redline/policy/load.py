"""Load policies from YAML: resolve ``extends``, then check what the schema alone cannot.

Every error names the file and line it comes from, including errors in a parent policy
reached through ``extends``, so the user edits the right file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from redline.errors import InputError, NotFoundError
from redline.lexicon import did_you_mean, load_lexicon
from redline.policy.model import Policy, Profile, RedLine
from redline.yamlload import line_of, read_yaml, validate

BUILTIN_DIR = Path(__file__).parent / "builtin"

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class _Source:
    """One policy file and its node tree, for locating errors after validation."""

    file: Path
    node: yaml.Node | None

    def error(self, message: str, loc: Loc) -> InputError:
        field = ".".join(str(p) for p in loc) or None
        return InputError(message, file=self.file, line=line_of(self.node, loc), field=field)


#: Where each red line of a resolved policy was declared: its file and index there.
_Origins = dict[str, tuple[_Source, int]]


def builtin_policies() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def load_policy(name_or_path: str | Path) -> Policy:
    """Load a built-in policy by name, or a policy file, with ``extends`` resolved."""
    path = Path(name_or_path)
    if not path.is_file():
        name = str(name_or_path)
        if name not in builtin_policies():
            raise NotFoundError(
                f"no policy file or built-in policy {name!r}; built-ins: "
                f"{', '.join(builtin_policies())}{did_you_mean(name, builtin_policies())}"
            )
        path = BUILTIN_DIR / f"{name}.yaml"
    return _resolve(path, ())[0]


def policy_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one policy file."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema"} | Policy.model_json_schema()


def _resolve(path: Path, chain: tuple[Path, ...]) -> tuple[Policy, _Origins]:
    data, node = read_yaml(path)
    src = _Source(path, node)
    if data is None:
        raise src.error("file is empty", ())
    policy = validate(Policy, data, file=path, node=node)
    if not policy.red_lines and policy.extends is None:
        raise src.error("the policy declares no red lines and extends none", ("red_lines",))
    _check_categories(policy, src)
    _check_unique(policy, src)
    origins: _Origins = {rl.id: (src, i) for i, rl in enumerate(policy.red_lines)}
    resolved = policy
    if policy.extends is not None:
        parent_path = _parent_path(policy.extends, src)
        here = (*chain, path.resolve())
        if parent_path.resolve() in here:
            cycle = " -> ".join(p.name for p in (*here, parent_path))
            raise src.error(f"extends cycle: {cycle}", ("extends",))
        parent, parent_origins = _resolve(parent_path, here)
        resolved = _merge(parent, policy)
        origins = parent_origins | origins
    _check_profiles(policy.profiles, src, [rl.id for rl in resolved.red_lines])
    _check_tripwire_ids(resolved, origins)
    return resolved, origins


def _parent_path(ref: str, src: _Source) -> Path:
    """A path (has a separator or a YAML suffix) relative to the file, else a built-in name."""
    if "/" in ref or ref.endswith((".yaml", ".yml")):
        path = src.file.parent / ref
        if not path.is_file():
            raise src.error(f"extends {ref!r}: no such file {str(path)!r}", ("extends",))
        return path
    if ref not in builtin_policies():
        raise src.error(
            f"extends {ref!r}: not a built-in policy (built-ins: {', '.join(builtin_policies())})"
            f"{did_you_mean(ref, builtin_policies())}",
            ("extends",),
        )
    return BUILTIN_DIR / f"{ref}.yaml"


def _merge(parent: Policy, child: Policy) -> Policy:
    """Child red lines and profiles replace the parent's of the same id, in the parent's place;
    new ones follow. Usability and context protocols are unions; guard settings are the
    child's if it declares them, else the parent's."""
    own = {rl.id: rl for rl in child.red_lines}
    red_lines = [own.get(rl.id, rl) for rl in parent.red_lines]
    red_lines += [rl for rl in child.red_lines if rl.id not in {p.id for p in parent.red_lines}]
    own_profiles = {p.id: p for p in child.profiles}
    profiles = [own_profiles.get(p.id, p) for p in parent.profiles]
    profiles += [p for p in child.profiles if p.id not in {q.id for q in parent.profiles}]
    usability = list(dict.fromkeys(parent.usability_protocols + child.usability_protocols))
    context = list(dict.fromkeys(parent.context_protocols + child.context_protocols))
    guard = child.guard if "guard" in child.model_fields_set else parent.guard
    return child.model_copy(
        update={"red_lines": red_lines, "profiles": profiles, "usability_protocols": usability,
                "context_protocols": context, "guard": guard}
    )


def _check_categories(policy: Policy, src: _Source) -> None:
    known = load_lexicon().ids()

    def check(category: str, loc: Loc) -> None:
        if category not in known:
            raise src.error(f"unknown lexicon id {category!r}{did_you_mean(category, known)}", loc)

    for i, rl in enumerate(policy.red_lines):
        check(rl.category, ("red_lines", i, "category"))
        for j, tw in enumerate(rl.tripwires):
            for k, category in enumerate(tw.categories):
                check(category, ("red_lines", i, "tripwires", j, "categories", k))


def _check_unique(policy: Policy, src: _Source) -> None:
    def first_duplicate(ids: list[str]) -> int | None:
        seen: set[str] = set()
        for i, item in enumerate(ids):
            if item in seen:
                return i
            seen.add(item)
        return None

    dup = first_duplicate([rl.id for rl in policy.red_lines])
    if dup is not None:
        rid = policy.red_lines[dup].id
        raise src.error(f"red line id {rid!r} is declared twice", ("red_lines", dup, "id"))
    dup = first_duplicate([p.id for p in policy.profiles])
    if dup is not None:
        pid = policy.profiles[dup].id
        raise src.error(f"profile id {pid!r} is declared twice", ("profiles", dup, "id"))


def _check_profiles(declared: list[Profile], src: _Source, red_line_ids: list[str]) -> None:
    """Check the profiles declared in one file against the red lines resolved up to it."""
    for i, profile in enumerate(declared):
        for j, rid in enumerate(profile.mandatory):
            if rid not in red_line_ids:
                raise src.error(
                    f"profile {profile.id!r} makes unknown red line {rid!r} mandatory"
                    f"{did_you_mean(rid, red_line_ids)}",
                    ("profiles", i, "mandatory", j),
                )


def _check_tripwire_ids(policy: Policy, origins: _Origins) -> None:
    """Tripwire ids name guard events, so they are unique across the resolved policy."""
    seen: dict[str, RedLine] = {}
    for rl in policy.red_lines:
        for j, tw in enumerate(rl.tripwires):
            if tw.id in seen:
                src, i = origins[rl.id]
                raise src.error(
                    f"tripwire id {tw.id!r} is also used by red line {seen[tw.id].id!r}",
                    ("red_lines", i, "tripwires", j, "id"),
                )
            seen[tw.id] = rl
