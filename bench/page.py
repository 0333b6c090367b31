"""Page benchmark: how long the web page takes to show its data in headless Chromium.

    ./run python -m bench.page [--loads 15]

Fills a database as the browser tests do (tests/web_site.py: relay-in
through the app from loopback upstreams), serves it with gunicorn and the
production gunicorn.conf.py (2 workers), then opens ``/`` in a fresh browser
context ``--loads`` times with the token already in session storage. Each
load is timed from navigation start until the dashboard rows and their
logos, the price card, the candle chart and the converter's currencies are
all on screen: once cold (empty cache), then again in the same tab (warm:
the fingerprinted assets come from the cache). Prints the median, min and
max, and the requests and bytes of a cold load.
"""

from __future__ import annotations

import argparse
import statistics

from playwright.sync_api import sync_playwright

from bench import harness
from tests.conftest import SECRET
from tests.web_site import COINS, launch_chromium, running_site

READY = f"""() =>
    document.querySelectorAll("#dashboard-table tbody tr").length === {len(COINS)}
    && document.querySelectorAll("#dashboard-table img.logo").length === {len(COINS)}
    && document.querySelector("#price-asof").textContent.includes("as of")
    && document.querySelectorAll("#chart-svg g").length > 0
    && document.querySelectorAll("#fx-from option").length > 0
"""
TRANSFER = """() => {
    const entries = [...performance.getEntriesByType("navigation"),
                     ...performance.getEntriesByType("resource")];
    return [entries.length, entries.reduce((sum, e) => sum + e.transferSize, 0)];
}"""


def load(page, base: str) -> float:
    page.goto(base + "/")
    page.wait_for_function(READY, polling="raf", timeout=30_000)
    return page.evaluate("performance.now()")


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<5} median {statistics.median(values):7.1f} ms"
        f"  (min {min(values):.1f}, max {max(values):.1f}, {len(values)} loads)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=15)
    args = parser.parse_args()
    cold, warm, transfers = [], [], []
    with (
        harness.postgres() as server_url,
        running_site(server_url) as site,
        harness.gunicorn(
            "relay.app:app", {"DATABASE_URL": site.database_url, "RELAY_JWT_SECRET": SECRET}
        ) as base,
        sync_playwright() as playwright,
    ):
        browser = launch_chromium(playwright)
        for _ in range(args.loads):
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_init_script(f"sessionStorage.setItem('relay.token', {site.token!r})")
            page = context.new_page()
            cold.append(load(page, base))
            transfers.append(page.evaluate(TRANSFER))
            warm.append(load(page, base))
            context.close()
        browser.close()
    requests_made, transferred = transfers[0]
    print(summary("cold", cold))
    print(summary("warm", warm))
    print(f"cold load: {requests_made} requests, {transferred / 1024:.1f} KiB transferred")


if __name__ == "__main__":
    main()
