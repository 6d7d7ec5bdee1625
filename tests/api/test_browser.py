"""The dashboard in a real browser (Playwright + Debian's Chromium) against a running node.

A member signs in through the form and sees the pool's NAV, a drawn NAV chart, the
WebSocket going live and a new alert arriving without a reload; an admin switches the
node to ``safe`` through the mode form, which a member never sees.

Needs ``/usr/bin/chromium`` (no browser is downloaded): without it the tests skip on a
laptop and fail when ``CI=true``. A screenshot of the member's page is saved to
``/tmp/dashboard-alice.png``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from corec.core import channels
from corec.core.events import make_event
from corec.core.notices import Alert
from tests.api.conftest import ALICE_PASSWORD, Stack
from tests.conftest import require_service

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()
SCREENSHOT = Path("/tmp/dashboard-alice.png")
TIMEOUT_MS = 20_000
ALERT_TIMEOUT_MS = 10_000


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, without any proxy (the node is on loopback)."""
    if not HAVE_CHROMIUM:
        require_service("Chromium at /usr/bin/chromium", FileNotFoundError(str(CHROMIUM)))
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-proxy-server", "--no-sandbox"],
        )
        try:
            yield instance
        finally:
            await instance.close()


async def open_page(browser: Browser, stack: Stack) -> tuple[Page, list[str]]:
    """A fresh page (its own session storage) on the dashboard, in US English, and the
    JavaScript errors it raises."""
    context = await browser.new_context(
        locale="en-US", timezone_id="UTC", viewport={"width": 1400, "height": 1000}
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    await page.goto(stack.base_url + "/")
    await expect(page.locator("#login-form")).to_be_visible(timeout=TIMEOUT_MS)
    return page, errors


async def sign_in(page: Page, user: str, password: str) -> None:
    await page.fill("#login-user", user)
    await page.fill("#login-password", password)
    await page.click("#login-submit")
    await expect(page.locator("#app-view")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.locator("#login-view")).to_be_hidden()


def as_usd(value: str) -> str:
    """A decimal string as the page's ``usd()`` shows it in en-US (``$1,404.04``)."""
    amount = Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def as_per_unit(value: str) -> str:
    """NAV per unit as the page's ``perUnit()`` shows it (4 to 6 decimals)."""
    text = f"{Decimal(value).quantize(Decimal('0.000001'), rounding=ROUND_HALF_UP):.6f}"
    while len(text.split(".")[1]) > 4 and text.endswith("0"):
        text = text[:-1]
    return f"${text}"


async def chart_points(page: Page) -> int:
    """How many points the NAV chart drew (``data-points``, set on each redraw)."""
    return int(await page.locator("#nav-chart").get_attribute("data-points") or 0)


async def painted_pixels(page: Page) -> int:
    """Non-transparent pixels on ``#nav-chart`` (a blank canvas has none)."""
    count: int = await page.evaluate(
        """() => {
            const canvas = document.getElementById('nav-chart');
            const ctx = canvas.getContext('2d');
            const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
            let painted = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted += 1;
            return painted;
        }"""
    )
    return count


async def test_member_sees_pool_chart_and_live_alert(sqlite_stack: Stack, browser: Browser) -> None:
    stack = sqlite_stack
    await stack.wait_replayed()
    pool: dict[str, Any] = (await stack.client("alice").get("/api/v1/pool")).json()
    history = (await stack.client("alice").get("/api/v1/pool/nav-history")).json()["items"]
    assert history, "the slice settles at least one day"

    page, errors = await open_page(browser, stack)
    await sign_in(page, "alice", ALICE_PASSWORD)

    # The pool's figures, as the page formats them.
    nav = page.locator("#pool-nav")
    await expect(nav).to_contain_text(as_usd(pool["nav_usd"]), timeout=TIMEOUT_MS)
    integer_part = f"{int(Decimal(pool['nav_usd'])):,}"
    assert integer_part in (await nav.inner_text())
    await expect(page.locator("#pool-nav-per-unit")).to_contain_text(
        as_per_unit(pool["nav_per_unit"])
    )
    await expect(page.locator("#whoami")).to_contain_text("alice")

    # The chart: visible, with the settled days plus "now", and actually painted.
    canvas = page.locator("#nav-chart")
    await expect(canvas).to_be_visible()
    await expect(page.locator("#nav-chart-empty")).to_be_hidden()
    # Every settled day plus "now".
    await expect(canvas).to_have_attribute("data-points", str(len(history) + 1))
    assert await chart_points(page) == len(history) + 1
    assert await painted_pixels(page) > 1000

    # Tables filled from the real API.
    await expect(page.locator("#members-table tbody tr")).to_have_count(1)  # only her own
    await expect(page.locator("#members-table")).to_contain_text("alice")
    await expect(page.locator("#trades-table tbody tr").first).to_be_visible()
    await expect(page.locator("#alerts-feed li.alert-item").first).to_be_visible()
    await expect(page.locator("#mode-badge")).to_have_text("normal")
    await expect(page.locator("#mode-form")).to_be_hidden()  # members do not switch modes

    # Live updates: the socket goes live, and a new alert shows up without a reload.
    await expect(page.locator("#ws-status")).to_have_attribute(
        "data-state", "live", timeout=TIMEOUT_MS
    )
    await page.screenshot(path=str(SCREENSHOT), full_page=True)
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    await stack.node.bus.publish(
        make_event(
            channels.ALERTS,
            Alert(name="browser_test_alert", message="hello from the test", severity="high"),
            source="test@t",
            clock=stack.node.clock,
        )
    )
    item = page.locator("#alerts-feed li.alert-item", has_text="hello from the test")
    await expect(item).to_have_count(1, timeout=ALERT_TIMEOUT_MS)
    await expect(item).to_contain_text("browser test alert")
    await expect(item).to_have_class("alert-item sev-high state-firing flash")
    alert_id = await item.get_attribute("data-alert-id")
    listed = (await stack.client("alice").get("/api/v1/alerts")).json()["items"]
    assert alert_id in {a["alert_id"] for a in listed if a["name"] == "browser_test_alert"}
    assert navigations == [], "the page reloaded"
    assert errors == []
    await page.context.close()


async def test_only_admins_switch_the_mode(sqlite_stack: Stack, browser: Browser) -> None:
    stack = sqlite_stack
    users = stack.node.plugin("user_management").service  # type: ignore[attr-defined]
    await users.add_user("ann", "admin", password="ann-password-123")

    member, member_errors = await open_page(browser, stack)
    await sign_in(member, "alice", ALICE_PASSWORD)
    await expect(member.locator("#mode-badge")).to_have_text("normal", timeout=TIMEOUT_MS)
    await expect(member.locator("#mode-form")).to_be_hidden()
    await expect(member.locator("#mode-select")).to_be_hidden()

    page, errors = await open_page(browser, stack)
    await sign_in(page, "ann", "ann-password-123")
    await expect(page.locator("#mode-badge")).to_have_text("normal", timeout=TIMEOUT_MS)
    await expect(page.locator("#mode-form")).to_be_visible()
    await expect(page.locator("#ws-status")).to_have_attribute(
        "data-state", "live", timeout=TIMEOUT_MS
    )
    await page.select_option("#mode-select", "safe")
    await page.fill("#mode-reason", "browser test")
    await page.click("#mode-change")
    await expect(page.locator("#mode-confirm")).to_be_visible()
    await expect(page.locator("#mode-confirm-text")).to_contain_text("SAFE")
    await page.click("#mode-confirm-yes")
    await expect(page.locator("#mode-badge")).to_have_text("safe", timeout=TIMEOUT_MS)
    await expect(page.locator("#mode-message")).to_contain_text("safe")

    reply = await stack.client("alice").get("/api/v1/system/mode")
    assert reply.json()["mode"] == "safe"
    # The member's page learns it live (system stream), still without the switch.
    await expect(member.locator("#mode-badge")).to_have_text("safe", timeout=TIMEOUT_MS)
    await expect(member.locator("#mode-form")).to_be_hidden()
    assert errors == [] and member_errors == []
    await page.context.close()
    await member.context.close()
