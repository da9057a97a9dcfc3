"""The console's assets: served at `/` with their content types, a strict CSP, and nothing fetched off-site."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gateway.console import ASSETS, CONTENT_TYPES, Console
from tests.support.inprocess import Running

CONSOLE_DEPS = Path(__file__).parents[1] / "console-deps"
VENDOR = ASSETS / "vendor"

SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an XML namespace name, never fetched
_URL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}|url\(""")
_MODULE_IMPORT = re.compile(r"""from\s+"([^"]+)"|import\s*\(\s*"([^"]+)"\s*\)""")


def _texts() -> dict[str, str]:
    """Our own files and the vendored ones that are served, by their name under /console/."""
    own = {path.name: path.read_text() for path in ASSETS.iterdir() if path.is_file()}
    vendored = {f"vendor/{path.name}": path.read_text() for path in VENDOR.iterdir() if path.suffix in CONTENT_TYPES}
    return own | vendored


def _vendor_map() -> dict[str, str]:
    """npm package file → file name in gateway/console/vendor/, from console-deps/package.json."""
    vendor: dict[str, str] = json.loads((CONSOLE_DEPS / "package.json").read_text())["vendor"]
    return vendor


def test_every_file_in_the_console_directory_is_served() -> None:
    assert sorted(Console().names) == sorted(_texts())
    assert {name.rpartition(".")[2] for name in Console().names} <= {suffix[1:] for suffix in CONTENT_TYPES}
    assert {path.name for path in ASSETS.iterdir() if path.is_dir()} == {"vendor"}


def test_no_asset_points_outside_the_site() -> None:
    for name, text in _texts().items():
        if name.startswith("vendor/"):
            continue  # the library's comments cite web pages; the next test checks it fetches nothing
        assert _URL.findall(text.replace(SVG_NAMESPACE, "")) == [], name


def test_vendored_files_import_and_fetch_nothing() -> None:
    for name, text in _texts().items():
        if name.startswith("vendor/"):
            assert _MODULE_IMPORT.findall(text) == [] and re.search(r"\bimport\s", text) is None, name
            assert "fetch(" not in text and "XMLHttpRequest" not in text and "url(" not in text, name


def test_vendored_files_are_the_pinned_npm_packages_files() -> None:
    package = json.loads((CONSOLE_DEPS / "package.json").read_text())
    lock = json.loads((CONSOLE_DEPS / "package-lock.json").read_text())
    for name, version in package["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), (name, version)  # exact, never a range
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    assert sorted(_vendor_map().values()) == sorted(path.name for path in VENDOR.iterdir())
    modules = CONSOLE_DEPS / "node_modules"
    if not modules.is_dir():
        pytest.skip("console-deps/node_modules is absent (no npm): run scripts/vendor-console to compare bytes")
    for source, target in _vendor_map().items():
        assert (VENDOR / target).read_bytes() == (modules / source).read_bytes(), target


def test_modules_import_only_console_modules_that_exist() -> None:
    texts = _texts()
    for name, text in texts.items():
        for found in _MODULE_IMPORT.findall(text):
            target = found[0] or found[1]
            assert target.startswith("/console/") and target.removeprefix("/console/") in texts, (name, target)


def test_the_page_has_no_inline_script_style_or_handler() -> None:
    page = _texts()["index.html"]
    assert all(" src=" in tag for tag in re.findall(r"<script[^>]*>", page))
    assert re.search(r"<script[^>]*>\s*[^<\s]", page) is None
    assert re.search(r"\son[a-z]+=|\sstyle=|<style", page) is None
    for name, text in _texts().items():
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text and "eval(" not in text, name


async def test_index_and_assets_have_content_types_and_security_headers(running: Running) -> None:
    index = await running.http.get("/")
    assert index.status_code == 200 and index.headers["content-type"] == "text/html; charset=utf-8"
    policy = index.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy and "connect-src 'self'" in policy
    assert index.headers["x-content-type-options"] == "nosniff"
    for name in Console().names:
        reply = await running.http.get(f"/console/{name}")
        assert reply.status_code == 200
        assert reply.headers["content-type"] == CONTENT_TYPES["." + name.rpartition(".")[2]], name
        assert reply.headers["content-security-policy"] == policy


@pytest.mark.parametrize("path", ["/console/nope.js", "/console/..%2Fconsole.py", "/console/%2e%2e%2fapp.py"])
async def test_other_names_are_not_found(running: Running, path: str) -> None:
    reply = await running.http.get(path)
    assert reply.status_code == 404
    assert "console.py" not in reply.text and "import" not in reply.text


async def test_the_rest_api_is_still_served_beside_the_console(running: Running) -> None:
    assert (await running.http.get("/api/v1/account")).status_code == 401
    assert (await running.http.get("/openapi.json")).status_code == 200
