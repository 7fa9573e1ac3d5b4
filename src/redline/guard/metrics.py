"""Prometheus text exposition for the guard: counters and a latency histogram.

A few dozen lines instead of a client library: the proxy exposes a fixed, small set of
series and the text format is stable. Workers of one ``guard serve --workers N`` each keep
their own and publish a snapshot to a shared folder; whichever worker a scrape reaches
adds up all of them (``merged``), so the totals are the deployment's.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

Labels = tuple[tuple[str, str], ...]

#: Upper bounds (seconds) of the added-latency histogram buckets.
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    body = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels
    )
    return "{" + body + "}"


class Metrics:
    def __init__(self) -> None:
        self.counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self.gauges: dict[str, float] = {}
        self._buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self._sum = 0.0
        self._count = 0
        self.help = {
            "redline_guard_requests_total": "Proxied requests by route and HTTP status.",
            "redline_guard_checks_total": "Items checked, by surface.",
            "redline_guard_decisions_total": "Decisions that were not allow, by action.",
            "redline_guard_upstream_errors_total": "Upstream failures, by kind.",
            "redline_guard_store_errors_total": "Requests refused (503): state store down.",
        }

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        self.counters[name][tuple(sorted(labels.items()))] += value

    def set(self, name: str, value: float) -> None:
        self.gauges[name] = value

    def observe_latency(self, seconds: float) -> None:
        self._buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._sum += seconds
        self._count += 1

    def snapshot(self) -> dict[str, Any]:
        """Everything counted, as JSON-ready data (``absorb`` adds one back in)."""
        return {
            "counters": [[name, [list(pair) for pair in lb], v]
                         for name, series in self.counters.items() for lb, v in series.items()],
            "gauges": self.gauges,
            "buckets": self._buckets,
            "sum": self._sum,
            "count": self._count,
        }

    def absorb(self, snap: dict[str, Any]) -> None:
        """Add another process's snapshot: counters, gauges and the histogram are sums."""
        for name, labels, value in snap["counters"]:
            self.counters[name][tuple((str(k), str(v)) for k, v in labels)] += float(value)
        for name, value in snap["gauges"].items():
            self.gauges[name] = self.gauges.get(name, 0.0) + float(value)
        if len(snap["buckets"]) != len(self._buckets):
            raise ValueError("metrics snapshot has other histogram buckets")
        self._buckets = [a + int(b) for a, b in zip(self._buckets, snap["buckets"], strict=True)]
        self._sum += float(snap["sum"])
        self._count += int(snap["count"])

    def publish(self, path: Path) -> None:
        """Write the snapshot to ``path`` atomically (a reader never sees half of it)."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.snapshot()), encoding="utf-8")
        os.replace(tmp, path)

    def merged(self, peers: list[Path]) -> Metrics:
        """This process's metrics plus the latest snapshots the other workers published
        (a peer that has not published yet counts as zero)."""
        total = Metrics()
        total.absorb(self.snapshot())
        for path in peers:
            try:
                total.absorb(json.loads(path.read_text(encoding="utf-8")))
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning("metrics of %s left out: %s", path.name, exc)
        return total

    def render(self) -> str:
        out: list[str] = []
        for name, series in sorted(self.counters.items()):
            if name in self.help:
                out.append(f"# HELP {name} {self.help[name]}")
            out.append(f"# TYPE {name} counter")
            out += [f"{name}{_labels(lb)} {v:g}" for lb, v in sorted(series.items())]
        for name, value in sorted(self.gauges.items()):
            out += [f"# TYPE {name} gauge", f"{name} {value:g}"]
        hist = "redline_guard_added_latency_seconds"
        out += [f"# HELP {hist} Time the guard added to a request (checks, not upstream).",
                f"# TYPE {hist} histogram"]
        cumulative = 0
        for bound, n in zip(LATENCY_BUCKETS, self._buckets, strict=False):
            cumulative += n
            out.append(f'{hist}_bucket{{le="{bound:g}"}} {cumulative}')
        out.append(f'{hist}_bucket{{le="+Inf"}} {self._count}')
        out += [f"{hist}_sum {self._sum:g}", f"{hist}_count {self._count}"]
        return "\n".join(out) + "\n"
