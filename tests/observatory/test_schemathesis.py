"""schemathesis against the served OpenAPI spec, as an admin and as a public client: no
input it generates makes the server fail (no 5xx)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.observatory.conftest import Observatory

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
#: Examples per operation: enough to hit every operation with odd inputs, small enough for CI.
MAX_EXAMPLES = "10"


def _run(obs: Observatory, tmp_path: Path, *headers: str) -> subprocess.CompletedProcess[str]:
    args = [str(SCHEMATHESIS), "run", obs.url + "/openapi.json", "--checks",
            "not_a_server_error", "--max-examples", MAX_EXAMPLES, "--seed", "7",
            "--exclude-path", "/api/alerts/stream", "--request-timeout", "30",
            "--phases", "examples,fuzzing", "--report-dir", str(tmp_path / "st")]
    for header in headers:
        args += ["-H", header]
    env = dict(os.environ, NO_COLOR="1", SCHEMATHESIS_HOOKS="")
    return subprocess.run(args, capture_output=True, text=True, timeout=500, env=env,
                          cwd=tmp_path)


def test_no_server_errors(obs: Observatory, tmp_path: Path) -> None:
    admin = obs.member("ops", "admin")
    obs.member("lab-a")
    result = _run(obs, tmp_path, f"Authorization: Bearer {admin.token}")
    out = result.stdout + result.stderr
    assert result.returncode == 0 and " passed" in out, out[-6000:]
    assert "Authentication failed" not in out, out[-3000:]  # the admin reached every route
    public = _run(obs, tmp_path)
    assert public.returncode == 0, (public.stdout + public.stderr)[-6000:]
