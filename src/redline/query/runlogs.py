"""Query run logs with SQL: DuckDB reads the JSON Lines logs into three tables (``runs``,
``samples``, ``summaries``) and then runs the user's query with file access switched off,
so a query can read the logs it was given and nothing else, and write nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from redline.errors import InputError, NotFoundError

#: Rows returned at most, so a runaway query cannot flood a terminal or memory.
MAX_ROWS = 10_000
#: Largest single JSON line read (a sample with long transcripts).
MAX_LINE_BYTES = 64 * 1024 * 1024
#: Columns read from the logs; other fields are ignored. Nested values stay JSON.
COLUMNS = {
    "type": "VARCHAR", "run_id": "VARCHAR", "created_at": "TIMESTAMPTZ",
    "policy_id": "VARCHAR", "target": "JSON", "planned_samples": "BIGINT",
    "id": "VARCHAR", "suite": "VARCHAR", "case_id": "VARCHAR", "category": "VARCHAR",
    "red_line": "VARCHAR", "attack": "VARCHAR", "epoch": "BIGINT", "seed": "BIGINT",
    "expected": "VARCHAR", "outcome": "VARCHAR", "error": "VARCHAR", "duration_s": "DOUBLE",
    "cached": "BOOLEAN", "output": "JSON", "scores": "JSON", "status": "VARCHAR",
    "samples": "BIGINT", "errors": "BIGINT", "totals": "JSON",
}
_SETUP = """
CREATE TABLE runs AS SELECT filename AS log, run_id, created_at, policy_id,
    target->>'uri' AS target, target->>'model' AS model,
    target->'metadata'->'campaign'->>'name' AS campaign,
    target->'metadata'->'campaign'->>'target' AS target_name,
    target->'metadata'->'campaign'->>'version' AS version, planned_samples
  FROM records WHERE type = 'header';
CREATE TABLE samples AS SELECT r.run_id, r.target, r.target_name, r.version,
    s.id AS sample_id, s.suite, s.case_id, s.category, s.red_line, s.attack, s.epoch, s.seed,
    s.expected, s.outcome, s.error, s.duration_s, s.cached,
    s.output->'message'->>'content' AS reply, s.scores
  FROM records s JOIN runs r ON s.filename = r.log WHERE s.type = 'sample';
CREATE TABLE summaries AS SELECT r.run_id, s.status, s.samples, s.errors, s.duration_s,
    CAST(s.totals->>'fail' AS BIGINT) AS fail,
    CAST(s.totals->>'unscored' AS BIGINT) AS unscored
  FROM records s JOIN runs r ON s.filename = r.log WHERE s.type = 'summary';
DROP TABLE records;
"""


def find_logs(roots: Sequence[Path]) -> list[Path]:
    """Every ``log.jsonl`` under the given folders (campaign shards included), or the files
    themselves."""
    logs: list[Path] = []
    for root in roots:
        if root.is_file():
            logs.append(root)
        elif root.is_dir():
            logs += sorted(root.rglob("log.jsonl"))
        else:
            raise NotFoundError(f"no run log or folder at {root}")
    return logs


def query_logs(sql: str, logs: Sequence[Path],
               max_rows: int = MAX_ROWS) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and at most ``max_rows`` rows of ``sql`` over the given logs."""
    if not logs:
        raise NotFoundError("no run logs to query")
    con = duckdb.connect(":memory:")
    try:
        con.execute(
            "CREATE TABLE records AS SELECT * FROM read_json(?, format='newline_delimited', "
            "columns=?, filename=true, ignore_errors=true, maximum_object_size=?)",
            [[str(p) for p in logs], COLUMNS, MAX_LINE_BYTES],
        )
        con.execute(_SETUP)
        con.execute("SET enable_external_access=false")
        con.execute("SET lock_configuration=true")
        try:
            cursor = con.execute(sql)
        except duckdb.Error as exc:
            raise InputError(f"query failed: {exc}", field="SQL") from None
        if cursor.description is None:
            return [], []
        columns = [d[0] for d in cursor.description]
        return columns, cursor.fetchmany(max_rows)
    finally:
        con.close()
