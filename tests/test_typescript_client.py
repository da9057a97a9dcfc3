"""The buf-generated TypeScript client: src/gen matches the protos, and the example runs against Tollgate."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.conformance.typescript import CLIENT_DIR, build_client
from tests.support.relay_env import relay_env

ROOT = CLIENT_DIR.parents[1]
GEN = CLIENT_DIR / "src" / "gen"
BUF = shutil.which("buf", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def _files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_gen_matches_protos(tmp_path: Path) -> None:
    assert BUF is not None, "buf not found; install the dev extra (buf-bin)"
    command = [BUF, "generate", "--template", "buf.gen.ts.yaml", "--output", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    fresh = _files(tmp_path / GEN.relative_to(ROOT))
    assert fresh, "buf generated no TypeScript"
    assert fresh == _files(GEN), "clients/typescript/src/gen is out of date: buf generate --template buf.gen.ts.yaml"


async def test_example_lists_models_streams_and_reads_the_balance(tmp_path: Path) -> None:
    script = build_client().with_name("example.js")
    async with relay_env(tmp_path) as env:
        environ = {
            **os.environ,
            "TOLLGATE_GRPC_URL": f"http://127.0.0.1:{env.running.tollgate.grpc_server.port}",
            "TOLLGATE_API_KEY": env.key,
            "TOLLGATE_SESSION": env.session["authorization"].removeprefix("Bearer "),
        }
        node = await asyncio.create_subprocess_exec(
            "node",
            str(script),
            "deepseek-chat",
            "hi there",
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await node.communicate()
    assert node.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0].startswith("models: ") and "deepseek-chat (65536 tokens)" in lines[0]
    assert lines[1].startswith("Echo: hi there")
    assert lines[2] == "usage: 3 prompt + 8 completion tokens"
    # $100 credited, one call of 3 prompt + 8 completion tokens: ceil(3 * 0.27 + 8 * 1.10) = 10 micro-USD.
    assert lines[3] == "balance: 99.999990 USD (99999990 micro-USD)"
