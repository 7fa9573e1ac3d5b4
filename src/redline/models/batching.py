"""Run concurrent generation requests as batched ``model.generate`` calls on one thread.

A small model on a CPU is starved by one prompt at a time: on 2 cores SmolLM2 makes 16
tokens/s for one prompt and 130 tokens/s for 32 prompts decoded together. The ``Batcher`` owns the
model: one worker thread collects requests for a short window (``window_s`` from the oldest
request's arrival, or until ``max_batch`` are waiting), pads them on the left, and decodes
them in one ``generate`` call. Anything else that needs the model (hidden states) runs on
the same thread between batches, so the model and its Rust tokenizer (which raises
"Already borrowed" under concurrent use) are only ever touched by that thread, and the
event loop never waits on torch.

Each row of a batch keeps its own settings. A stopping criterion, called by ``generate``
after every decoding step, tracks every row: its own ``max_tokens``, EOS, its own stop
strings, streaming deltas, and abandonment by a cancelled caller. A finished row's reply is
delivered at once, without waiting for the longest row. Sampling is done per row by a logits
processor that draws from the row's own ``torch.Generator``, so greedy and sampled requests
with any temperature and top_p share a batch without affecting each other; ``generate``
itself runs greedy and picks the drawn token.

A request may carry a ``TokenTripwire``: a linear probe read at one decoder layer. Forward
hooks on the layers such rows need (registered only while such a batch runs, so the path
without a probe is untouched) keep each step's last-position hidden state; after the step,
the row's probe scores it, and at or above its threshold the row stops without the token
that state produced, with ``finish_reason`` "content_filter" and a ``Trip`` that names the
probe, layer, score and token index. Other rows of the batch go on.

Determinism: a greedy request gives the same tokens every time for the same prompt; a
sampled request with a ``seed`` gives the same tokens every time, whatever else shares its
batch (a sampled request without a seed draws a fresh one). Both hold up to float rounding:
different batch shapes change matmul blocking, which can flip a near-tie between two
tokens, so equality is exact for identical batches and near-certain otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import torch
from torch import nn
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from redline.models.errors import TargetError, TargetResponseError
from redline.records.chat import GenerateConfig

T = TypeVar("T")


FinishReason = Literal["stop", "length", "content_filter"]


@dataclass(frozen=True, eq=False)
class TokenTripwire:
    """A linear probe on the output of decoder layer ``layer`` (1…N), scored at every
    decoding step: P = sigmoid(h·weights + bias), tripping at ``threshold``."""

    name: str
    layer: int
    #: (hidden size,) float32.
    weights: torch.Tensor
    bias: float
    threshold: float


@dataclass(frozen=True)
class Trip:
    """Why a row was stopped by its tripwire."""

    probe: str
    layer: int
    score: float
    threshold: float
    #: Reply tokens kept: the token produced from the tripping state is withheld.
    token_index: int


@dataclass(frozen=True)
class Completion:
    """One request's reply, cut at its own limits."""

    text: str
    finish_reason: FinishReason
    input_tokens: int
    #: Tokens the model generated for this request, the terminating EOS included.
    output_tokens: int
    trip: Trip | None = None


@dataclass(frozen=True)
class BatchStats:
    """How requests were grouped: one entry per ``generate`` call, with its batch size."""

    batch_sizes: tuple[int, ...]

    @property
    def generate_calls(self) -> int:
        return len(self.batch_sizes)


@dataclass(eq=False)
class _Request:
    """A generation request as submitted from an event loop."""

    prompt: str
    config: GenerateConfig
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Completion]
    #: Called on the request's event loop with each new piece of text.
    on_delta: Callable[[str], None] | None
    tripwire: TokenTripwire | None = None
    enqueued: float = field(default_factory=time.monotonic)
    #: Set from the event loop when the caller stops waiting; the row then stops decoding.
    abandoned: bool = False


@dataclass(eq=False)
class _Call(Generic[T]):
    """A function to run on the model thread, e.g. a forward pass for hidden states."""

    fn: Callable[[], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]
    enqueued: float = field(default_factory=time.monotonic)


def _deliver(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[T], outcome: T | BaseException
) -> None:
    """Settle ``future`` on its own loop, from the worker thread."""

    def settle() -> None:
        if future.done():  # the caller was cancelled meanwhile
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        loop.call_soon_threadsafe(settle)


class _Row:
    """Decoding state of one request inside a batch."""

    def __init__(
        self, request: _Request, prompt_ids: list[int], max_tokens: int, batcher: Batcher
    ) -> None:
        self.request = request
        self.prompt_ids = prompt_ids
        self.max_tokens = max_tokens
        self.batcher = batcher
        self.ids: list[int] = []
        self.steps = 0
        self.done = False
        self.emitted = ""
        config = request.config
        self.generator: torch.Generator | None = None
        if config.temperature > 0:
            seed = config.seed if config.seed is not None else secrets.randbits(63)
            self.generator = torch.Generator().manual_seed(seed)
        self._holdback = max((len(s) for s in config.stop), default=1) - 1

    def step(self, token: int) -> None:
        """Account for the token the model just produced for this row."""
        self.steps += 1
        if token in self.batcher.eos_ids:
            self.finish("stop", self.batcher.decode(self.ids))
            return
        self.ids.append(token)
        if not (self.request.config.stop or self.request.on_delta):
            if self.steps >= self.max_tokens:
                self.finish("length", self.batcher.decode(self.ids))
            return
        text = self.batcher.decode(self.ids)
        cut = min((i for s in self.request.config.stop if (i := text.find(s)) >= 0), default=-1)
        if cut >= 0:
            self.finish("stop", text[:cut])
        elif self.steps >= self.max_tokens:
            self.finish("length", text)
        else:
            self._stream(text, len(text) - self._holdback)

    def _stream(self, text: str, end: int) -> None:
        """Send what is new up to ``end``, holding back a possible partial stop string or
        a partial UTF-8 character (decoded as U+FFFD until its last byte arrives)."""
        on_delta = self.request.on_delta
        if on_delta is None:
            return
        while end > len(self.emitted) and text[end - 1] == "\ufffd":
            end -= 1
        if end > len(self.emitted) and text.startswith(self.emitted):
            delta = text[len(self.emitted) : end]
            self.emitted = text[:end]
            try:
                self.request.loop.call_soon_threadsafe(on_delta, delta)
            except RuntimeError:
                self.request.abandoned = True

    def finish(self, reason: FinishReason, text: str, trip: Trip | None = None) -> None:
        self.done = True
        self._stream(text, len(text))
        completion = Completion(text, reason, len(self.prompt_ids), self.steps, trip)
        _deliver(self.request.loop, self.request.future, completion)

    def trip(self, tripwire: TokenTripwire, score: float) -> None:
        """Stop here: the token just produced is withheld, the reply is what came before."""
        trip = Trip(tripwire.name, tripwire.layer, score, tripwire.threshold, len(self.ids))
        self.finish("content_filter", self.batcher.decode(self.ids), trip)


class _LayerTaps:
    """Forward hooks keeping the last-position output of chosen decoder layers (1…N)."""

    def __init__(self, model: Any, layers: Sequence[int], *, whole: bool = False) -> None:
        self.outputs: dict[int, torch.Tensor] = {}
        decoder_layers: nn.ModuleList = model.model.layers
        self._handles = [
            decoder_layers[layer - 1].register_forward_hook(self._keeper(layer, whole))
            for layer in sorted(set(layers))
        ]

    def _keeper(self, layer: int, whole: bool) -> Callable[..., None]:
        def keep(module: nn.Module, args: Any, output: Any) -> None:
            hidden = output[0] if isinstance(output, tuple) else output
            self.outputs[layer] = hidden if whole else hidden[:, -1, :]

        return keep

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


@contextlib.contextmanager
def layer_taps(model: Any, layers: Sequence[int], *, whole: bool = False) -> Iterator[_LayerTaps]:
    """Hooks on ``layers`` for the duration of the block (``whole``: every position)."""
    taps = _LayerTaps(model, layers, whole=whole)
    try:
        yield taps
    finally:
        taps.close()


def _probe_scores(tripwire: TokenTripwire, taps: _LayerTaps) -> list[float]:
    """The tripwire's probability for every row of the batch at this step."""
    hidden = taps.outputs[tripwire.layer]
    scores: list[float] = torch.sigmoid(hidden @ tripwire.weights + tripwire.bias).tolist()
    return scores


class _TrackRows(StoppingCriteria):
    """Per-row bookkeeping after each decoding step; rows report themselves finished."""

    def __init__(self, rows: list[_Row], taps: _LayerTaps | None = None) -> None:
        self.rows = rows
        self.taps = taps

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        last = input_ids[:, -1].tolist()
        probed: dict[int, list[float]] = {}
        if self.taps is not None:
            for row in self.rows:
                tripwire = row.request.tripwire
                if tripwire is not None and not row.done and id(tripwire) not in probed:
                    probed[id(tripwire)] = _probe_scores(tripwire, self.taps)
        for i, (row, token) in enumerate(zip(self.rows, last, strict=True)):
            if row.done:
                continue
            tripwire = row.request.tripwire
            if row.request.abandoned:
                row.done = True
            elif tripwire is not None and probed[id(tripwire)][i] >= tripwire.threshold:
                row.trip(tripwire, probed[id(tripwire)][i])
            else:
                row.step(token)
        return torch.tensor([row.done for row in self.rows], dtype=torch.bool)


class _SampleRows(LogitsProcessor):
    """Draw each sampled row's next token from its own generator (temperature, then top_p),
    and leave only that token possible, so that greedy decoding selects it."""

    def __init__(self, rows: list[_Row]) -> None:
        self.rows = rows

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        for i, row in enumerate(self.rows):
            if row.generator is None or row.done:
                continue
            config = row.request.config
            probs = torch.softmax(scores[i] / config.temperature, dim=-1)
            if config.top_p < 1.0:
                sorted_probs, order = torch.sort(probs, descending=True)
                # Keep the smallest prefix whose mass reaches top_p (always the first token).
                outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= config.top_p
                sorted_probs[outside] = 0.0
                token = order[torch.multinomial(sorted_probs, 1, generator=row.generator)]
            else:
                token = torch.multinomial(probs, 1, generator=row.generator)
            scores[i] = float("-inf")
            scores[i, token] = 0.0
        return scores


def default_threads() -> int:
    """Torch intra-op threads for the model: one fewer than the cores this process may run on
    (its affinity mask, e.g. a container's CPU set), at least one.

    The spare core is for the event loop, scorers and servers beside the model. Measured on
    2 cores (SmolLM2, 32 prompts batched): 2 threads gave 140 tokens/s on an idle machine
    but 14 tokens/s while one other process kept a core busy (OpenMP threads stall waiting
    for a descheduled peer); 1 thread gave 96 and 92.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity masks
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


class Batcher:
    """Owns a causal LM and its tokenizer; batches requests to them on one worker thread.

    ``stats`` counts the ``generate`` calls and their sizes, so callers and tests can see
    that concurrency turned into batches.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch: int,
        window_s: float,
        name: str = "model",
        threads: int | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.window_s = window_s
        self.name = name
        self.threads = threads or default_threads()
        eos = model.generation_config.eos_token_id
        self.eos_ids: frozenset[int] = frozenset(eos if isinstance(eos, list) else [eos])
        pad = model.generation_config.pad_token_id
        self.pad_id: int = pad if pad is not None else min(self.eos_ids)
        self.context_length: int = model.config.max_position_embeddings
        self.num_layers: int = model.config.num_hidden_layers
        self._sizes: list[int] = []
        self._queue: queue.SimpleQueue[_Request | _Call[Any]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=f"redline-{name}", daemon=True)
        self._thread.start()

    @property
    def stats(self) -> BatchStats:
        return BatchStats(tuple(self._sizes))

    def decode(self, ids: list[int]) -> str:
        return str(
            self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        )

    async def generate(
        self,
        prompt: str,
        config: GenerateConfig,
        on_delta: Callable[[str], None] | None = None,
        tripwire: TokenTripwire | None = None,
    ) -> Completion:
        """Generate a reply to an already rendered prompt.

        ``on_delta`` is called on the caller's event loop with each piece of new text, for
        streaming. Cancelling the call stops the request's row at its next decoding step.
        ``tripwire`` stops the row when its probe trips (see the module docstring).
        """
        if tripwire is not None and not 1 <= tripwire.layer <= self.num_layers:
            raise ValueError(
                f"{self.name}: tripwire {tripwire.name!r} reads layer {tripwire.layer}; "
                f"the model's decoder layers are 1…{self.num_layers}"
            )
        loop = asyncio.get_running_loop()
        request = _Request(prompt, config, loop, loop.create_future(), on_delta, tripwire)
        self._queue.put(request)
        try:
            return await request.future
        except asyncio.CancelledError:
            request.abandoned = True
            raise

    def span_states(self, prompt: str, reply: str, layers: Sequence[int]) -> torch.Tensor:
        """(layers, 1 + reply tokens, hidden): the outputs of decoder ``layers`` at the
        prompt's last token and at each reply token, the states a ``TokenTripwire`` reads
        while the model writes ``reply``. Blocking: run it through ``call``."""
        for layer in layers:
            if not 1 <= layer <= self.num_layers:
                raise ValueError(
                    f"{self.name}: layer {layer} out of range: decoder layers are "
                    f"1…{self.num_layers}"
                )
        prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        reply_ids = self.tokenizer(reply, add_special_tokens=False)["input_ids"] if reply else []
        ids = (prompt_ids + reply_ids)[: self.context_length]
        start = min(len(prompt_ids), len(ids)) - 1
        with torch.inference_mode(), layer_taps(self.model, layers, whole=True) as taps:
            self.model(input_ids=torch.tensor([ids], dtype=torch.long))
            return torch.stack([taps.outputs[layer][0, start:] for layer in layers])

    async def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the model thread (between batches) and return its result."""
        loop = asyncio.get_running_loop()
        job: _Call[T] = _Call(fn, loop, loop.create_future())
        self._queue.put(job)
        return await job.future

    def _work(self) -> None:
        torch.set_num_threads(self.threads)  # process-wide; only this thread runs the model
        while True:
            items = self._collect()
            requests = [i for i in items if isinstance(i, _Request) and not i.abandoned]
            if requests:
                try:
                    self._run_batch(requests)
                except Exception as exc:  # the thread must outlive any one batch
                    error = TargetError(
                        f"{self.name}: generation failed: {type(exc).__name__}: {exc}"
                    )
                    for request in requests:  # those already answered keep their answer
                        _deliver(request.loop, request.future, error)
            for job in items:
                if isinstance(job, _Call):
                    self._run_call(job)

    def _collect(self) -> list[_Request | _Call[Any]]:
        """Block for one item, then gather more until the window closes or the batch is full."""
        items = [self._queue.get()]
        deadline = items[0].enqueued + self.window_s
        while len(items) < self.max_batch:
            timeout = deadline - time.monotonic()
            try:
                items.append(
                    self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        return items

    @staticmethod
    def _run_call(job: _Call[Any]) -> None:
        try:
            outcome = job.fn()
        except Exception as exc:  # delivered to the caller, who re-raises it
            outcome = exc
        _deliver(job.loop, job.future, outcome)

    def _run_batch(self, requests: list[_Request]) -> None:
        encoded: list[list[int]] = self.tokenizer(
            [r.prompt for r in requests], add_special_tokens=False
        )["input_ids"]
        rows: list[_Row] = []
        for request, ids in zip(requests, encoded, strict=True):
            room = self.context_length - len(ids)
            if room < 1:
                _deliver(
                    request.loop,
                    request.future,
                    TargetResponseError(
                        f"{self.name}: the prompt has {len(ids)} tokens; the model's context "
                        f"holds {self.context_length}"
                    ),
                )
                continue
            rows.append(_Row(request, ids, min(request.config.max_tokens, room), self))
        if not rows:
            return
        width = max(len(r.prompt_ids) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row.prompt_ids)
            input_ids[i, width - n :] = torch.tensor(row.prompt_ids, dtype=torch.long)
            attention_mask[i, width - n :] = 1
        sampled = any(r.generator is not None for r in rows)
        probe_layers = [r.request.tripwire.layer for r in rows if r.request.tripwire is not None]
        self._sizes.append(len(rows))
        with contextlib.ExitStack() as stack, torch.inference_mode():
            taps = None
            if probe_layers:
                taps = stack.enter_context(layer_taps(self.model, probe_layers))
            self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=max(r.max_tokens for r in rows),
                do_sample=False,
                pad_token_id=self.pad_id,
                eos_token_id=sorted(self.eos_ids),
                logits_processor=LogitsProcessorList([_SampleRows(rows)] if sampled else []),
                stopping_criteria=StoppingCriteriaList([_TrackRows(rows, taps)]),
            )
        for row in rows:
            if not row.done:  # generate hit its own length limit before the row's step did
                row.finish("length", self.decode(row.ids))
