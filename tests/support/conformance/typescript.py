"""The TypeScript door: the buf-generated client in one Node process per test module, JSON lines in and out."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import shutil
import subprocess
from pathlib import Path
from typing import IO, Any

import grpc
from google.protobuf import json_format
from tollgate.v1 import relay_pb2

from tests.support.conformance.grpc_door import chat_outcome, embed_outcome, models_outcome, stream_outcome
from tests.support.conformance.outcome import Call, Op, Outcome

CLIENT_DIR = Path(__file__).resolve().parents[3] / "clients" / "typescript"
_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
_METHODS = {
    Op.CHAT: "createChatCompletion",
    Op.STREAM: "streamChatCompletion",
    Op.MODELS: "listModels",
    Op.EMBED: "createEmbedding",
}


@functools.cache
def build_client() -> Path:
    """Compiles clients/typescript with its pinned tsc (once per test run); returns the driver script.

    Needs node and `npm ci` in clients/typescript, which `scripts/setup dev` runs when npm is present.
    """
    tsc = CLIENT_DIR / "node_modules" / ".bin" / "tsc"
    if shutil.which("node") is None or not tsc.exists():
        raise RuntimeError("the TypeScript client needs node and `npm ci` in clients/typescript (scripts/setup dev)")
    compiled = subprocess.run([str(tsc), "-p", str(CLIENT_DIR / "tsconfig.json")], capture_output=True, text=True)
    if compiled.returncode != 0:
        raise RuntimeError(f"tsc failed:\n{compiled.stdout}{compiled.stderr}")
    return CLIENT_DIR / "dist" / "driver.js"


class NodeProcess:
    """One `node dist/driver.js` process; calls are sent one at a time."""

    def __init__(self, script: Path) -> None:
        self._process = subprocess.Popen(
            ["node", str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self._ids = itertools.count()
        self._lock = asyncio.Lock()

    async def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        stdin, stdout = self._pipes()
        async with self._lock:
            payload = {"id": str(next(self._ids)), **payload}
            stdin.write(json.dumps(payload) + "\n")
            stdin.flush()
            line = await asyncio.to_thread(stdout.readline)
        if not line:
            raise RuntimeError(f"the node driver exited with {self._process.wait()}")
        answer: dict[str, Any] = json.loads(line)
        assert answer["id"] == payload["id"]
        return answer

    def close(self) -> None:
        stdin, stdout = self._pipes()
        stdin.close()
        self._process.wait(timeout=10)
        stdout.close()

    def _pipes(self) -> tuple[IO[str], IO[str]]:
        assert self._process.stdin is not None and self._process.stdout is not None
        return self._process.stdin, self._process.stdout


class TypeScriptDriver:
    """Sends each call to the Node driver, which uses the generated client over connect-node's gRPC transport."""

    door = "typescript"

    def __init__(self, node: NodeProcess, grpc_port: int) -> None:
        self._node = node
        self._address = f"http://127.0.0.1:{grpc_port}"

    async def call(self, call: Call) -> Outcome:
        method = _METHODS[call.op]
        payload: dict[str, Any] = {"address": self._address, "credential": call.key, "service": "relay"}
        payload |= {"method": method, "request": _request(call)}
        if call.cancel_after is not None:
            payload["cancel_after"] = call.cancel_after
        answer = await self._node.request(payload)
        chunks = [
            json_format.ParseDict(chunk, relay_pb2.StreamChatCompletionResponse()) for chunk in answer.get("chunks", [])
        ]
        if not answer["ok"]:
            return Outcome(error=answer["reason"], grpc_code=_CODE_BY_NUMBER[answer["code"]], chunks=len(chunks))
        if call.op is Op.STREAM:
            return stream_outcome(chunks, cancelled=answer.get("cancelled", False))
        response = answer["response"]
        if call.op is Op.CHAT:
            return chat_outcome(json_format.ParseDict(response, relay_pb2.CreateChatCompletionResponse()))
        if call.op is Op.MODELS:
            return models_outcome(json_format.ParseDict(response, relay_pb2.ListModelsResponse()))
        return embed_outcome(json_format.ParseDict(response, relay_pb2.CreateEmbeddingResponse()))


def _request(call: Call) -> dict[str, object]:
    """The request message as proto3 JSON (the chat params double as OpenAI's JSON and the proto's)."""
    if call.op in (Op.CHAT, Op.STREAM):
        return {"params": call.chat_params()}
    if call.op is Op.EMBED:
        return call.embed_params()
    return {}
