"""Codegen checks: gen/ matches the protos, buf lint/format/breaking pass, the stubs import."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

ROOT = Path(__file__).resolve().parents[1]
GEN = ROOT / "gen"
# The venv's bin holds buf, python3 and the protoc-gen-* plugins that buf.gen.yaml runs from PATH.
# Not resolved: the venv's python is a symlink to the base interpreter.
VENV_BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
BUF = shutil.which("buf", path=ENV["PATH"])

TINY_PROTO = """\
syntax = "proto3";

package acme.v1;

// Thing is a thing.
message Thing {
  string name = 1;
  int64 size = 2;
}
"""


def buf(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    if BUF is None:
        pytest.fail(f"buf not found on {ENV['PATH']!r}; install the dev extra (buf-bin)")
    return subprocess.run([BUF, *args], cwd=cwd, env=ENV, capture_output=True, text=True, check=False)


def git(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def files_under(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def generated_modules() -> list[str]:
    return sorted(path.name.removesuffix("_pb2.py") for path in GEN.glob("tollgate/v1/*_pb2.py"))


def test_gen_matches_protos(tmp_path: Path) -> None:
    result = buf("generate", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    fresh, committed = files_under(tmp_path / "gen"), files_under(GEN)
    same = {name for name, data in fresh.items() if committed.get(name) == data}
    problems = [f"missing: gen/{name}" for name in sorted(fresh.keys() - committed.keys())]
    problems += [f"extra (not generated): gen/{name}" for name in sorted(committed.keys() - fresh.keys())]
    problems += [f"differs: gen/{name}" for name in sorted(fresh.keys() & committed.keys() - same)]
    assert not problems, "gen/ is out of date with proto/; run scripts/gen\n" + "\n".join(problems)


def test_grpc_plugin_matches_grpc_tools(tmp_path: Path) -> None:
    """tools/protoc-gen-grpc_python gives exactly what grpc_tools.protoc writes itself."""
    protos = sorted(p.relative_to(ROOT / "proto").as_posix() for p in (ROOT / "proto/tollgate").rglob("*.proto"))
    if not protos:
        pytest.skip("no protos under proto/tollgate")
    command = [sys.executable, "-m", "grpc_tools.protoc", "-Iproto", f"--grpc_python_out={tmp_path}", *protos]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    committed = {name: data for name, data in files_under(GEN).items() if name.endswith("_pb2_grpc.py")}
    assert files_under(tmp_path) == committed


def test_buf_lint() -> None:
    result = buf("lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_format() -> None:
    result = buf("format", "--diff", "--exit-code", "--exclude-path", "proto/google")
    assert result.returncode == 0, "run `buf format --write`:\n" + result.stdout + result.stderr


def test_no_breaking_change_since_previous_commit() -> None:
    if git("rev-parse", "--verify", "--quiet", "HEAD~1^{commit}").returncode != 0:
        pytest.skip("no previous commit to compare with (first commit, or a depth-1 clone)")
    if git("cat-file", "-e", "HEAD~1:buf.yaml").returncode != 0:
        pytest.skip("the previous commit has no buf.yaml yet")
    result = buf("breaking", "--against", ".git#ref=HEAD~1")
    assert result.returncode == 0, result.stdout + result.stderr


def commit_all(repo: Path, message: str) -> None:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"]
    for args in (["add", "-A"], [*identity, "commit", "-q", "-m", message]):
        result = git(*args, cwd=repo)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("path", "old", "new", "breaking"),
    [
        ("proto/acme/v1/thing.proto", "  int64 size = 2;\n", "", True),
        ("proto/acme/v1/thing.proto", "  int64 size = 2;\n", "  int64 size = 2;\n  bool shiny = 3;\n", False),
        # Vendored googleapis files are ignored by the breaking check.
        ("proto/google/rpc/status.proto", "  int32 code = 1;\n", "", False),
    ],
    ids=["delete-field", "add-field", "vendored-file"],
)
def test_breaking_check_catches_deleted_field(tmp_path: Path, path: str, old: str, new: str, breaking: bool) -> None:
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "proto/google", tmp_path / "proto/google")
    (tmp_path / "proto/acme/v1").mkdir(parents=True)
    (tmp_path / "proto/acme/v1/thing.proto").write_text(TINY_PROTO)
    assert git("init", "-q", cwd=tmp_path).returncode == 0
    commit_all(tmp_path, "first")
    edited = tmp_path / path
    source = edited.read_text()
    assert old in source
    edited.write_text(source.replace(old, new))
    commit_all(tmp_path, "second")

    result = buf("breaking", "--against", ".git#ref=HEAD~1", cwd=tmp_path)

    if breaking:
        assert result.returncode != 0
        assert 'field "2" with name "size" on message "Thing" was deleted' in result.stdout
    else:
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", generated_modules())
def test_services_have_stub_and_servicer(name: str) -> None:
    messages = importlib.import_module(f"tollgate.v1.{name}_pb2")
    services = importlib.import_module(f"tollgate.v1.{name}_pb2_grpc")
    with grpc.insecure_channel("localhost:1") as channel:  # lazy: never connects
        for service in messages.DESCRIPTOR.services_by_name.values():
            stub = getattr(services, f"{service.name}Stub")(channel)
            servicer = getattr(services, f"{service.name}Servicer")
            assert callable(getattr(services, f"add_{service.name}Servicer_to_server"))
            for method in service.methods:
                assert callable(getattr(stub, method.name)), f"{service.full_name}.{method.name}"
                assert callable(getattr(servicer, method.name)), f"{service.full_name}.{method.name}"


def test_generated_packages_are_namespace_packages() -> None:
    assert not list(GEN.rglob("__init__.py")), "gen/ is generated with clean: true; keep nothing hand-written"
    package = importlib.import_module("tollgate.v1")
    assert package.__file__ is None
    assert str(GEN / "tollgate/v1") in list(package.__path__)
