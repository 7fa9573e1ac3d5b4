"""``redline guard``: serve the proxy, manage keys and reviews, verify the audit log, train
and evaluate detectors.

Exit codes: 0 ok; 2 bad input (policy, key file, options); 3 upstream or store unreachable;
4 not found (review, tripwire detector with --require-all); 5 audit log verification failed;
6 a worker of ``serve --workers N`` exited (the others were stopped).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
from pathlib import Path
from typing import Any

import click

from redline.errors import InputError, NotFoundError
from redline.guard.auth import KeyRing, add_key, remove_keys

#: Hosts whose traffic never leaves the machine (plain HTTP is fine there).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
#: Where ``guard serve`` keeps its state and audit log unless told otherwise.
DEFAULT_STATE_DIR = Path("guard-state")


#: Sub-commands defined in other modules, imported when used (they load the embedding model).
LAZY_COMMANDS = {
    "train": "redline.cli.guard_train_cmd:train",
    "evaluate": "redline.cli.guard_train_cmd:evaluate",
}


class _GuardGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = LAZY_COMMANDS.get(cmd_name)
        if spec is None:
            return super().get_command(ctx, cmd_name)
        module, attr = spec.split(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_GuardGroup)
def guard() -> None:
    """Runtime tripwires: an OpenAI-compatible guard proxy and its tools."""


def _options(semantic_model: str | None, external_url: str | None, external_model: str | None,
             external_key_env: str | None, probe: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if semantic_model:
        options["semantic_model"] = semantic_model
    if external_url:
        options["external_url"] = external_url
        options["external_model"] = external_model or "default"
        if external_key_env:
            options["external_api_key"] = os.environ.get(external_key_env)
    if probe:
        options["probe"] = probe
    return options


def _webhook_secret(url: str | None, env: str | None) -> str | None:
    from redline.guard.review_notify import MIN_SECRET_CHARS

    if url is None:
        if env is not None:
            raise InputError("--review-webhook-secret-env needs --review-webhook")
        return None
    if not url.startswith(("http://", "https://")):
        raise InputError("must be an http:// or https:// URL", field="--review-webhook")
    secret = os.environ.get(env or "")
    if not env or not secret:
        raise InputError("--review-webhook needs --review-webhook-secret-env naming a set "
                         "variable (calls are signed)")
    if len(secret) < MIN_SECRET_CHARS:
        raise InputError(f"${env} is shorter than {MIN_SECRET_CHARS} characters")
    return secret


@guard.command("serve")
@click.option("--policy", "policy_ref", required=True, help="Built-in policy name or YAML path.")
@click.option("--upstream", required=True, help="Upstream base URL, e.g. http://HOST:PORT/v1.")
@click.option("--upstream-key-env", default=None, metavar="VAR",
              help="Environment variable holding the upstream's API key.")
@click.option("--keys", "keys_path", required=True, type=click.Path(dir_okay=False),
              help="Client key file (see `redline guard keys add`).")
@click.option("--store", default=None,
              help="State store: memory:, sqlite:PATH (default guard-state/guard.sqlite), "
                   "redis://HOST:PORT/DB.")
@click.option("--audit", "audit_path", default=None, type=click.Path(dir_okay=False),
              help="Audit log (default guard-state/audit.jsonl).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--semantic-model", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Semantic classifier trained by `redline guard train`.")
@click.option("--external-url", default=None, help="OpenAI-compatible classifier endpoint.")
@click.option("--external-model", default=None)
@click.option("--external-key-env", default=None, metavar="VAR")
@click.option("--probe", default=None, type=click.Path(exists=True),
              help="Activation-probe artefact (needs a local model).")
@click.option("--require-all", is_flag=True,
              help="Refuse to start if any tripwire's detector cannot run here.")
@click.option("--max-body-bytes", default=1 << 20, show_default=True, type=int)
@click.option("--public-metrics", is_flag=True, help="Serve /metrics without a key.")
@click.option("--events", "events_path", default=None, type=click.Path(dir_okay=False),
              help="Append per-window event summaries (counts, no content) to this JSON Lines "
                   "file, for `redline observatory push --events` and `redline drift`.")
@click.option("--events-window", default=60.0, show_default=True, type=float,
              help="Seconds per event summary window.")
@click.option("--guard-id", default=None, help="Deployment id in event summaries "
              "[default: POLICY@HOST:PORT; workers append /wN].")
@click.option("--review-webhook", default=None, metavar="URL",
              help="POST a signed review.held event here for each held item.")
@click.option("--review-webhook-secret-env", default=None, metavar="VAR",
              help="Environment variable with the HMAC secret for --review-webhook.")
@click.option("--tls-cert", default=None, type=click.Path(dir_okay=False),
              help="PEM certificate chain: serve HTTPS (with --tls-key).")
@click.option("--tls-key", default=None, type=click.Path(dir_okay=False),
              help="PEM private key of --tls-cert.")
@click.option("--workers", default=1, show_default=True, type=int,
              help="Proxy processes sharing the port (SO_REUSEPORT); above 1 needs a "
                   "sqlite: or redis:// store, and each worker writes audit.wN.jsonl.")
def serve(policy_ref: str, upstream: str, upstream_key_env: str | None, keys_path: str,
          store: str | None, audit_path: str | None, host: str, port: int,
          semantic_model: str | None, external_url: str | None, external_model: str | None,
          external_key_env: str | None, probe: str | None, require_all: bool,
          max_body_bytes: int, public_metrics: bool, events_path: str | None,
          events_window: float, guard_id: str | None, review_webhook: str | None,
          review_webhook_secret_env: str | None, tls_cert: str | None,
          tls_key: str | None, workers: int) -> None:
    """Serve the guard in front of UPSTREAM on /v1/chat/completions.

    With --workers N, N processes serve one port; if one exits the others are stopped and
    the command exits 6. SIGTERM or Ctrl-C stops them all (exit 0); SIGHUP reloads --keys."""
    from redline.guard.engine import Guard
    from redline.guard.proxy import ProxyConfig
    from redline.guard.serve import ServeSpec, tls_context
    from redline.guard.serve import serve as serve_one
    from redline.guard.workers import check_workers, run_workers
    from redline.policy.load import load_policy

    policy = load_policy(policy_ref)
    keys = KeyRing.load(keys_path)
    if not len(keys):
        raise InputError(f"{keys_path}: no keys; add one with `redline guard keys add`")
    upstream_key = None
    if upstream_key_env:
        upstream_key = os.environ.get(upstream_key_env)
        if not upstream_key:
            raise InputError(f"${upstream_key_env} is not set", field="--upstream-key-env")
    if store is None or audit_path is None:
        DEFAULT_STATE_DIR.mkdir(exist_ok=True)
    spec = ServeSpec(
        policy_ref=policy_ref,
        keys_path=keys_path,
        store_url=store or f"sqlite:{DEFAULT_STATE_DIR / 'guard.sqlite'}",
        audit_path=audit_path or str(DEFAULT_STATE_DIR / "audit.jsonl"),
        config=ProxyConfig(upstream=upstream, upstream_api_key=upstream_key,
                           max_body_bytes=max_body_bytes, public_metrics=public_metrics),
        host=host,
        port=port,
        options=_options(semantic_model, external_url, external_model, external_key_env, probe),
        require_all=require_all,
        events_path=events_path,
        events_window=events_window,
        guard_id=guard_id,
        review_webhook=review_webhook,
        review_webhook_secret=_webhook_secret(review_webhook, review_webhook_secret_env),
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    check_workers(spec, workers)
    tls_context(spec)
    if spec.tls_cert is None and host not in LOOPBACK_HOSTS:
        click.echo(f"warning: serving plain HTTP on {host}: client keys cross the network in "
                   "clear; use --tls-cert/--tls-key or a TLS-terminating proxy", err=True)

    def ready(bound: tuple[str, int], g: Guard) -> None:
        inactive = (f", {len(g.status.inactive)} inactive: " + ", ".join(sorted(g.status.inactive))
                    if g.status.inactive else "")
        processes = f", {workers} workers" if workers > 1 else ""
        click.echo(f"guard for policy {policy.id} on {spec.scheme}://{bound[0]}:{bound[1]}/v1 "
                   f"-> {upstream}  ({len(g.status.armed)} tripwires armed{inactive}{processes})",
                   err=True)

    if workers > 1:
        run_workers(spec, workers, ready)
        return
    try:
        asyncio.run(serve_one(spec, on_ready=ready))
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@guard.group("keys")
def keys_group() -> None:
    """Client API keys (stored as sha256 digests)."""


@keys_group.command("add")
@click.argument("principal")
@click.option("--file", "path", required=True, type=click.Path(dir_okay=False))
@click.option("--role", "roles", multiple=True, default=("client",), show_default=True,
              type=click.Choice(["client", "reviewer", "admin"]))
@click.option("--context", default=None, help="Guard context id from the policy.")
@click.option("--rate", "rate_per_s", default=None, type=float, help="Requests per second.")
def keys_add(principal: str, path: str, roles: tuple[str, ...], context: str | None,
             rate_per_s: float | None) -> None:
    """Create a key for PRINCIPAL; prints it once (only its digest is stored)."""
    token = add_key(path, principal, list(roles), context, rate_per_s)  # type: ignore[arg-type]
    click.echo(token)


@keys_group.command("list")
@click.option("--file", "path", required=True, type=click.Path(dir_okay=False))
def keys_list(path: str) -> None:
    """Principals, roles, contexts and rates, with each digest's first 12 characters."""
    for key in KeyRing.load(path).entries():
        extra = "".join([f"  context={key.context}" if key.context else "",
                         f"  rate={key.rate_per_s:g}/s" if key.rate_per_s else ""])
        click.echo(f"{key.sha256[:12]}  {key.principal}  {','.join(key.roles)}{extra}")


@keys_group.command("remove")
@click.argument("principal")
@click.option("--file", "path", required=True, type=click.Path(dir_okay=False))
@click.option("--digest", "sha256_prefix", default=None,
              help="Only the key whose digest starts with this (see `keys list`).")
def keys_remove(principal: str, path: str, sha256_prefix: str | None) -> None:
    """Remove PRINCIPAL's keys; a running guard refuses them after SIGHUP (exit 4 if none
    matched)."""
    removed = remove_keys(path, principal, sha256_prefix)
    if not removed:
        raise NotFoundError(f"{path}: no key of {principal!r}"
                            + (f" with digest {sha256_prefix}…" if sha256_prefix else ""))
    click.echo(f"removed {removed} key(s) of {principal}; send SIGHUP to a running guard")


@guard.group("review")
def review_group() -> None:
    """Held items: list, approve, deny (through a running proxy or the store directly)."""


def _review_target(url: str | None, key_env: str, store: str | None) -> tuple[str, str] | str:
    if store:
        return store
    if not url:
        raise InputError("give --url (a running guard) or --store (its state store)")
    key = os.environ.get(key_env)
    if not key:
        raise InputError(f"${key_env} is not set (a reviewer key)", field="--key-env")
    return url.rstrip("/"), key


async def _http(method: str, url: str, key: str, body: dict[str, Any] | None = None) -> Any:
    import aiohttp

    from redline.models.errors import TargetUnreachableError

    try:
        async with aiohttp.ClientSession() as session, session.request(
            method, url, json=body, headers={"Authorization": f"Bearer {key}"}
        ) as resp:
            data = await resp.json(content_type=None)
            if resp.status == 404:
                raise NotFoundError(data.get("error", {}).get("message", "not found"))
            if resp.status >= 400:
                message = data.get("error", {}).get("message", resp.reason)
                raise InputError(f"{method} {url}: HTTP {resp.status}: {message}")
            return data
    except aiohttp.ClientConnectionError as exc:
        raise TargetUnreachableError(f"guard at {url} unreachable: {exc}") from None


_review_options = [
    click.option("--url", default=None, help="Guard base URL, e.g. http://127.0.0.1:8080."),
    click.option("--key-env", default="REDLINE_GUARD_KEY", show_default=True,
                 help="Environment variable with a reviewer key."),
    click.option("--store", default=None, help="Or the guard's state store URL."),
    click.option("--policy", "policy_ref", default="idais", show_default=True,
                 help="Policy (for review expiry settings with --store)."),
]


def _with_review_options(f: Any) -> Any:
    for option in reversed(_review_options):
        f = option(f)
    return f


async def _queue(store_url: str, policy_ref: str) -> Any:
    from redline.guard.review import ReviewQueue
    from redline.guard.store.open import open_store_checked
    from redline.policy.load import load_policy

    store = await open_store_checked(store_url)
    return store, ReviewQueue(store, load_policy(policy_ref).guard.review)


@review_group.command("list")
@_with_review_options
@click.option("--json", "as_json", is_flag=True)
def review_list(url: str | None, key_env: str, store: str | None, policy_ref: str,
                as_json: bool) -> None:
    """Pending items, oldest first."""
    target = _review_target(url, key_env, store)

    async def run() -> list[dict[str, Any]]:
        if isinstance(target, tuple):
            data = await _http("GET", f"{target[0]}/v1/reviews?status=pending", target[1])
            return list(data["data"])
        st, queue = await _queue(target, policy_ref)
        try:
            return [i.model_dump(mode="json") for i in await queue.pending()]
        finally:
            await st.close()

    items = asyncio.run(run())
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        click.echo("no pending reviews")
    for item in items:
        summary = str(item["summary"]).replace("\n", " ")[:100]
        click.echo(f"{item['id']}  {item['principal']}  {','.join(item['tripwires'])}  "
                   f"{summary}")


def _decide(review_id: str, approve: bool, note: str, url: str | None, key_env: str,
            store: str | None, policy_ref: str) -> None:
    target = _review_target(url, key_env, store)
    verdict = "approve" if approve else "deny"

    async def run() -> dict[str, Any]:
        if isinstance(target, tuple):
            result: dict[str, Any] = await _http(
                "POST", f"{target[0]}/v1/reviews/{review_id}/{verdict}", target[1],
                {"note": note})
            return result
        st, queue = await _queue(target, policy_ref)
        try:
            by = os.environ.get("USER", "cli")
            item = await queue.decide(review_id, approve, by=by, note=note)
            return dict(item.model_dump(mode="json"))
        finally:
            await st.close()

    item = asyncio.run(run())
    click.echo(f"{item['id']} {item['status']}")


@review_group.command("approve")
@click.argument("review_id")
@click.option("--note", default="")
@_with_review_options
def review_approve(review_id: str, note: str, url: str | None, key_env: str,
                   store: str | None, policy_ref: str) -> None:
    """Release a held item."""
    _decide(review_id, True, note, url, key_env, store, policy_ref)


@review_group.command("deny")
@click.argument("review_id")
@click.option("--note", default="")
@_with_review_options
def review_deny(review_id: str, note: str, url: str | None, key_env: str,
                store: str | None, policy_ref: str) -> None:
    """Keep a held item blocked."""
    _decide(review_id, False, note, url, key_env, store, policy_ref)


@guard.group("audit")
def audit_group() -> None:
    """The hash-chained audit log."""


@audit_group.command("verify")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--public-key", default=None, type=click.Path(exists=True, dir_okay=False),
              help="PEM Ed25519 key that signed the checkpoints.")
def audit_verify(paths: tuple[str, ...], public_key: str | None) -> None:
    """Check each chain (e.g. every worker's audit.wN.jsonl); exit 5 naming the first bad
    line of every altered file."""
    from redline.errors import VerificationError
    from redline.guard.audit import verify_audit

    key = None
    if public_key:
        from redline.evidence.keys import load_public_key

        key = load_public_key(Path(public_key))
    problems: list[str] = []
    for path in paths:
        report = verify_audit(path, public_key=key)
        try:
            report.raise_for_problem()
        except VerificationError as exc:
            problems.append(str(exc))
            continue
        click.echo(f"{path}: {report.records} records, chain intact"
                   + (f", {report.checkpoints} signed checkpoints" if report.checkpoints else ""))
    if problems:
        raise VerificationError("\n".join(problems))


@guard.command("effect")
@click.argument("unguarded_run")
@click.argument("guarded_run")
@click.option("--policy", "policy_ref", default=None,
              help="Policy to read both runs against [default: the first run's].")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json"]), default="md",
              show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None)
def effect(unguarded_run: str, guarded_run: str, policy_ref: str | None, fmt: str,
           out_path: Path | None) -> None:
    """Attack success and over-refusal without and with the guard, side by side
    (GUARDED_RUN evaluated a guard:POLICY+URI target)."""
    from redline.assess.guard_effect import guard_effect, render_effect_html, render_effect_md
    from redline.assess.tiers import assess_run
    from redline.cli.report_cmd import _emit
    from redline.engine.runlog import find_run, read_runlog
    from redline.policy.load import load_policy

    logs = [read_runlog(find_run(r, None)) for r in (unguarded_run, guarded_run)]
    source = policy_ref or logs[0].header.policy_source
    policy = load_policy(source) if source else None
    result = guard_effect(assess_run(logs[0], policy), assess_run(logs[1], policy))
    if fmt == "json":
        text = result.model_dump_json(indent=2) + "\n"
    else:
        text = (render_effect_md if fmt == "md" else render_effect_html)(result)
    _emit(text, out_path)
