"""Compile test-only .proto files at test time with grpc_tools.protoc (no generated code committed)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from google.protobuf import descriptor_pb2
from grpc_tools import protoc  # type: ignore[import-untyped]

PROTOS_DIR = Path(__file__).resolve().parent.parent / "protos"
_compiled: dict[str, ModuleType] = {}


def include_dirs() -> list[Path]:
    """tests/protos, the well-known types shipped by grpcio-tools, google/api shipped by googleapis-common-protos."""
    googleapis = Path(descriptor_pb2.__file__).resolve().parent.parent.parent
    return [PROTOS_DIR, Path(protoc.__file__).resolve().parent / "_proto", googleapis]


def compile_proto(name: str, out_dir: Path) -> ModuleType:
    """Compile tests/protos/<name> into out_dir (put on sys.path) and import its `_pb2` module, once per process."""
    module_name = name.removesuffix(".proto").replace("/", ".") + "_pb2"
    if module_name in _compiled:
        return _compiled[module_name]
    args = ["grpc_tools.protoc", *(f"-I{path}" for path in include_dirs()), f"--python_out={out_dir}", name]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed for {name}")
    sys.path.insert(0, str(out_dir))
    module = importlib.import_module(module_name)
    _compiled[module_name] = module
    return module
