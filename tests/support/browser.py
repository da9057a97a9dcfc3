"""Headless Debian chromium driven by Playwright, in the test's event loop; never a downloaded browser."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
# Runs before the page's own code (through the driver, outside the CSP) and records what the CSP refuses.
_WATCH_CSP = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.effectiveDirective} refused ${event.blockedURI || "inline code"}`);
});
"""


def require_chromium() -> None:
    """Skip when chromium is missing on a developer's machine; in CI (CI=true) a missing browser fails."""
    if CHROMIUM.exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing in CI: scripts/setup dev installs Debian's chromium as root")
    pytest.skip(f"no {CHROMIUM}: run `apt-get install -y chromium` (or scripts/setup dev as root) for browser tests")


@contextlib.asynccontextmanager
async def browser_page(base_url: str, *, timezone: str = "Asia/Tokyo") -> AsyncIterator[Page]:
    """A fresh page on `base_url` with clipboard access and downloads, in `timezone`."""
    require_chromium()
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = await browser.new_context(
                base_url=base_url,
                accept_downloads=True,
                timezone_id=timezone,
                locale="en-US",
                viewport={"width": 1400, "height": 900},
            )
            await context.add_init_script(_WATCH_CSP)
            await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
            page = await context.new_page()
            page.set_default_timeout(10_000)
            yield page
        finally:
            await browser.close()


async def csp_violations(page: Page) -> list[str]:
    """What the page's Content-Security-Policy has refused since it was loaded."""
    found: list[str] = await page.evaluate("window.cspViolations")
    return found


async def screenshot(page: Page, name: str) -> Path:
    """Saves a full-page screenshot under test-artifacts/console/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
