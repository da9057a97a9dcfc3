"""The console in headless chromium: a user's whole story, an XSS payload, and the operator's page."""

from __future__ import annotations

import csv
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import openai
import pytest
from playwright.async_api import Dialog, Page, expect

from server.domain.money import format_usd
from tests.support.browser import browser_page, csp_violations, screenshot
from tests.support.inprocess import OPERATOR_KEY, PASSWORD
from tests.support.relay_env import RelayEnv, relay_env

STARTING_BALANCE = 100_000_000  # relay_env credits 100 USD
XSS_NAME = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def usd(micros: int) -> str:
    return f"${format_usd(micros)}"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[RelayEnv]:
    async with relay_env(tmp_path) as started:
        yield started


async def _log_in(page: Page, name: str, password: str) -> None:
    await page.goto("/")
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()


async def _chat(base_url: str, key: str) -> None:
    async with openai.AsyncOpenAI(api_key=key, base_url=f"{base_url}/v1", max_retries=0) as client:
        await client.chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": "hello"}])


async def _check_the_spend_chart(page: Page, model: str, cost: int) -> None:
    """uPlot's canvas is drawn, its legend names the model, and its values follow the cursor, in exact USD."""
    chart = page.locator(".chart .uplot")
    await expect(chart.locator("canvas")).to_have_count(1)
    day, served = chart.locator(".u-legend .u-series").first, chart.locator(".u-legend .u-series", has_text=model)
    await expect(served.locator(".u-label")).to_have_text(model)
    await expect(served.locator(".u-value")).to_have_text(usd(cost))  # the 30 days' total while the cursor is away
    plot = chart.locator(".u-over")
    box = await plot.bounding_box()
    assert box is not None
    await plot.hover(position={"x": box["width"] - 3, "y": box["height"] / 2})  # today's bar, the right-most
    await expect(day.locator(".u-value")).to_have_text(datetime.now(UTC).date().isoformat())
    await expect(served.locator(".u-value")).to_have_text(usd(cost))
    await plot.hover(position={"x": 3, "y": box["height"] / 2})  # 29 days ago: nothing spent
    await expect(served.locator(".u-value")).to_have_text(usd(0))
    await plot.hover(position={"x": box["width"] - 3, "y": box["height"] / 2})


async def test_a_user_creates_a_token_calls_with_it_audits_and_deletes_it(env: RelayEnv) -> None:
    base_url = env.running.base_url
    async with browser_page(base_url) as page:
        console_errors: list[str] = []
        page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
        await _log_in(page, "user", PASSWORD)
        await expect(page.locator("#balance")).to_have_text(usd(STARTING_BALANCE))
        await expect(page.locator("#available")).to_have_text(usd(STARTING_BALANCE))
        await expect(page.locator("#ledger tbody tr")).to_have_count(1)
        await expect(page.locator("#ledger tbody tr")).to_contain_text(f"credit{usd(STARTING_BALANCE)}")

        await page.get_by_role("link", name="Tokens").click()
        create = page.locator("#create-token")
        await create.get_by_label("Name").fill("browser-app")
        await create.get_by_label("Spend cap, USD (0 = unlimited)").fill("1")
        await create.get_by_role("button", name="Create token").click()
        await expect(page.locator("#new-key")).to_contain_text("you will not see it again")
        key = await page.locator("#key-value").inner_text()
        await page.get_by_role("button", name="Copy key").click()
        await expect(page.locator("#new-key")).to_contain_text("Copied.")
        assert await page.evaluate("navigator.clipboard.readText()") == key and key.startswith("sk-")
        stored = await page.evaluate("JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie])")
        assert key not in stored and '[{},{"tollgate.session"' in stored and stored.endswith(',""]')
        await screenshot(page, "tokens-created")

        await _chat(base_url, key)
        bill = env.upstream.bill[-1].tokens
        cost = math.ceil(bill.input * Decimal("0.27") + bill.output * Decimal("1.10"))

        await page.get_by_role("link", name="Logs").click()
        row = page.locator("#log-results tbody tr", has_text="browser-app")
        await expect(row).to_contain_text(usd(cost))
        await expect(row).to_contain_text("deepseek-chat")
        await expect(row.locator("td").nth(4)).to_have_text(f"{bill.input:,}")
        await expect(row.locator("td").nth(6)).to_have_text(f"{bill.output:,}")
        await expect(row.locator("td").nth(10)).to_have_text("ok")
        await screenshot(page, "logs")
        async with page.expect_download() as download_info:
            await page.get_by_role("button", name="Export CSV").click()
        exported = Path(await (await download_info.value).path())
        (csv_row,) = list(csv.DictReader(exported.read_text().splitlines()))
        assert (csv_row["token_name"], int(csv_row["cost_micros"])) == ("browser-app", cost)

        await page.get_by_role("link", name="Home").click()
        await expect(page.locator("#balance")).to_have_text(usd(STARTING_BALANCE - cost))
        await expect(page.locator("#spent-today")).to_have_text(usd(cost))
        await expect(page.locator("#top-tokens table")).to_contain_text("browser-app")
        await _check_the_spend_chart(page, "deepseek-chat", cost)
        assert await csp_violations(page) == [] and console_errors == []  # uPlot drew it within the CSP
        await screenshot(page, "home")

        await page.get_by_role("link", name="Models & pricing").click()
        # The home page stays until the pricing page replaces it: its tables must not be the ones matched.
        await expect(page.get_by_role("heading", name="Models & pricing")).to_be_visible()
        await expect(page.locator("main table")).to_contain_text("deepseek-chat")
        await screenshot(page, "pricing")

        await page.get_by_role("link", name="Tokens").click()
        token_row = page.locator("#token-list tbody tr", has_text="browser-app")
        await expect(token_row).to_contain_text(usd(1_000_000 - cost))  # remaining cap
        await token_row.get_by_role("button", name="Edit").click()
        await token_row.get_by_label("Spend cap, USD (0 = unlimited)").fill("5")
        await token_row.get_by_role("button", name="Save").click()
        await expect(token_row).to_contain_text(usd(5_000_000 - cost))
        await screenshot(page, "tokens")

        await token_row.get_by_role("button", name="Disable").click()
        await expect(token_row).to_contain_text("disabled")
        with pytest.raises(openai.AuthenticationError):
            await _chat(base_url, key)

        asked: list[str] = []

        async def accept(dialog: Dialog) -> None:
            asked.append(dialog.message)
            await dialog.accept()

        page.on("dialog", accept)
        await token_row.get_by_role("button", name="Delete").click()
        await expect(page.locator("#token-list")).not_to_contain_text("browser-app")
        assert len(asked) == 1 and "browser-app" in asked[0]
        assert console_errors == []  # nothing refused by the CSP, no script error
    with pytest.raises(openai.AuthenticationError):
        await _chat(base_url, key)
    balance = (await env.running.http.get("/api/v1/account", headers=env.session)).json()
    assert balance["balance_micros"] == STARTING_BALANCE - cost


async def test_a_hostile_token_name_is_shown_as_text_and_runs_nothing(env: RelayEnv) -> None:
    await env.running.create_token(env.session, name=XSS_NAME)
    async with browser_page(env.running.base_url) as page:
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        await _log_in(page, "user", PASSWORD)
        await page.get_by_role("link", name="Tokens").click()
        await expect(page.locator("#token-list")).to_contain_text(XSS_NAME)
        assert await page.locator("#token-list img, #token-list script").count() == 0
        await page.get_by_role("link", name="Logs").click()
        await expect(page.get_by_label("Token")).to_contain_text(XSS_NAME)
        await expect(page.locator("#log-results")).to_contain_text("No calls match")
        await screenshot(page, "xss-as-text")
    assert dialogs == []


async def test_the_operator_exports_logs_credits_debits_sets_a_discount_disables_and_enables_an_account(
    env: RelayEnv,
) -> None:
    async with browser_page(env.running.base_url) as page:
        await page.goto("/")
        await page.get_by_label("Name").fill("operator")
        await page.get_by_label("Password").fill("not the operator key")
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_role("alert")).to_be_visible()
        await screenshot(page, "login-refused")
        await _log_in(page, "operator", OPERATOR_KEY)
        await expect(page.get_by_role("link", name="Tokens")).to_be_hidden()
        row = page.locator("#account-list tbody tr", has_text="user")
        await expect(row).to_contain_text(usd(STARTING_BALANCE))
        await _chat(env.running.base_url, env.key)
        async with page.expect_download() as download_info:
            await row.get_by_role("button", name="Logs (CSV)").click()
        assert (await download_info.value).suggested_filename == "tollgate-logs-user.csv"
        (csv_row,) = list(csv.DictReader(Path(await (await download_info.value).path()).read_text().splitlines()))
        assert (csv_row["requested_model"], csv_row["status"]) == ("deepseek-chat", "ok")
        await page.reload()  # the balance after that call
        row = page.locator("#account-list tbody tr", has_text="user")
        spent = STARTING_BALANCE - int(csv_row["cost_micros"])
        await expect(row).to_contain_text(usd(spent))
        for credited in (1, 2):
            await row.locator("input[name=amount_usd]").fill("2.5")
            await row.locator("input[name=reason]").fill("goodwill")
            await row.get_by_role("button", name="Credit").click()
            await expect(row).to_contain_text(usd(spent + credited * 2_500_000))
        await row.locator("input[name=amount_usd]").fill("1.5")
        await row.locator("input[name=reason]").fill("mistaken credit")
        await row.get_by_role("button", name="Debit").click()
        await expect(row).to_contain_text(usd(spent + 5_000_000 - 1_500_000))
        await row.locator("input[name=amount_usd]").fill("100000")
        await row.get_by_role("button", name="Debit").click()
        await expect(row.get_by_role("alert")).to_contain_text(f"{format_usd(spent + 3_500_000)} USD available")
        await row.locator("input[name=discount]").fill("0.90")
        await row.get_by_role("button", name="Set", exact=True).click()
        await expect(row.locator("input[name=discount]")).to_have_value("0.9")
        await row.locator("input[name=discount]").fill("-1")
        await row.get_by_role("button", name="Set", exact=True).click()
        await expect(row.get_by_role("alert")).to_contain_text("discount")
        await screenshot(page, "operator")
        page.on("dialog", lambda dialog: dialog.accept())
        await row.get_by_role("button", name="Disable").click()
        await expect(row).to_contain_text("disabled")
        assert (await env.running.http.get("/api/v1/account", headers=env.session)).status_code == 401
        await row.get_by_role("button", name="Enable").click()
        await expect(row).to_contain_text("active")
        await row.get_by_role("button", name="Disable").click()
        await expect(row).to_contain_text("disabled")
        saved = await page.evaluate("JSON.parse(sessionStorage.getItem('tollgate.session')).token")
        await page.get_by_role("button", name="Log out").click()
        await expect(page.get_by_role("button", name="Log in")).to_be_visible()
        assert await page.evaluate("sessionStorage.length") == 0
    operator_session = {"authorization": f"Bearer {saved}"}
    assert (await env.running.http.get("/api/v1/accounts", headers=operator_session)).status_code == 401
    assert (await env.running.http.get("/api/v1/account", headers=env.session)).status_code == 401


async def test_a_user_changes_the_password_and_the_operator_resets_a_forgotten_one(env: RelayEnv) -> None:
    async with browser_page(env.running.base_url) as page:
        await _log_in(page, "user", PASSWORD)
        form = page.locator("#change-password")
        for current in ("not the password", PASSWORD):
            await form.get_by_label("Current password").fill(current)
            await form.get_by_label("New password").fill("changed in the console")
            await form.get_by_role("button", name="Change password").click()
            if current != PASSWORD:
                await expect(form.get_by_role("alert")).to_contain_text("the current password is wrong")
        await expect(form.get_by_role("status")).to_contain_text("Password changed; 1 other session(s) ended.")
        await expect(page.locator("#balance")).to_be_visible()  # this session goes on
        await screenshot(page, "password-changed")
    assert (await env.running.http.get("/api/v1/account", headers=env.session)).status_code == 401
    async with browser_page(env.running.base_url) as page:
        await _log_in(page, "operator", OPERATOR_KEY)
        row = page.locator("#account-list tbody tr", has_text="user")
        page.on("dialog", lambda dialog: dialog.accept())
        await row.get_by_role("button", name="Reset password").click()
        shown = row.get_by_role("status")
        await expect(shown).to_contain_text("New password (shown once): ")
        password = await shown.locator("code").inner_text()
    for tried, status in (("changed in the console", 401), (password, 200)):
        login = await env.running.http.post("/api/v1/sessions", json={"name": "user", "password": tried})
        assert login.status_code == status


def _tokyo(iso: str) -> str:
    """What the browser (en-US, Asia/Tokyo) shows for a UTC timestamp."""
    local = datetime.fromisoformat(iso).astimezone(ZoneInfo("Asia/Tokyo"))
    clock = f"{local.hour % 12 or 12}:{local.minute:02d}:{local.second:02d} {'AM' if local.hour < 12 else 'PM'}"
    return f"{local.month}/{local.day}/{local.year}, {clock}"


async def test_logs_page_through_filter_and_show_local_times(env: RelayEnv) -> None:
    base_url = env.running.base_url
    _, second_key = await env.running.create_token(env.session, name="second")
    for _ in range(26):
        await _chat(base_url, env.key)
    async with openai.AsyncOpenAI(api_key=second_key, base_url=f"{base_url}/v1", max_retries=0) as client:
        await client.chat.completions.create(model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}])
    newest = (await env.running.http.get("/api/v1/logs?page_size=1", headers=env.session)).json()["logs"][0]
    by_model = await env.running.http.get("/api/v1/usage?group_by=USAGE_GROUPING_MODEL", headers=env.session)
    spent = {bucket["model"]: int(bucket["cost_micros"]) for bucket in by_model.json()["buckets"]}
    assert sorted(spent) == ["claude-haiku-4-5", "deepseek-chat"]
    async with browser_page(base_url) as page:
        await _log_in(page, "user", PASSWORD)
        for model, cost in spent.items():  # two models stacked in today's bar
            await _check_the_spend_chart(page, model, cost)
        assert await csp_violations(page) == []
        await screenshot(page, "home-two-models")
        await page.get_by_role("link", name="Logs").click()
        rows = page.locator("#log-results tbody tr")
        await expect(rows).to_have_count(27)
        first_cell = (await rows.first.locator("td").first.inner_text()).replace("\u202f", " ")
        assert first_cell == _tokyo(newest["create_time"])
        await page.get_by_label("Rows per page").select_option("25")
        await page.get_by_role("button", name="Apply filters").click()
        await expect(rows).to_have_count(25)
        await page.get_by_role("button", name="Older →").click()
        await expect(rows).to_have_count(2)
        await expect(page.get_by_role("button", name="Older →")).to_be_disabled()
        await page.get_by_role("button", name="← Newest").click()
        await expect(rows).to_have_count(25)
        await page.get_by_label("Model").fill("claude-haiku-4-5")
        await page.get_by_role("button", name="Apply filters").click()
        await expect(rows).to_have_count(1)
        await expect(rows).to_contain_text("second")
        await page.get_by_label("Model").fill("")
        await page.get_by_label("Token").select_option(label="second")
        await page.get_by_role("button", name="Apply filters").click()
        await expect(rows).to_have_count(1)
        await page.get_by_label("Token").select_option(label="all tokens")
        await page.get_by_label("From").fill("2999-01-01T00:00")
        await page.get_by_role("button", name="Apply filters").click()
        await expect(page.locator("#log-results")).to_contain_text("No calls match")
        await page.get_by_label("From").fill("")
        await page.get_by_label("Status").fill("rate_limit_exceeded")
        await page.get_by_role("button", name="Apply filters").click()
        await expect(page.locator("#log-results")).to_contain_text("No calls match")
