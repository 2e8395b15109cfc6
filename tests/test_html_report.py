"""The HTML journey report: its figures from small journeys, and the page in a real browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omnijourney.html_report import (
    COLORS,
    JourneyView,
    journeys_from_truth,
    render,
    summarize,
)
from tests.browser import CHROMIUM, open_page, png_pixels
from tests.simulator.support import medium

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def _journey(jid: str, customer: str, touches: str, converted: bool, day: int = 0) -> JourneyView:
    steps = tuple((t.split("/")[0], t.split("/")[1]) for t in touches.split())
    first = T0 + timedelta(days=day)
    return JourneyView(jid, customer, first, first + timedelta(hours=5), steps, converted)


JOURNEYS = [
    # research online, buy in store
    _journey("J1", "C1", "web/page_view web/product_view pos/purchase", True),
    # email, web, add to cart, no purchase
    _journey("J2", "C2", "email/sent web/page_view web/add_to_cart", False, day=1),
    # online purchase after an app look
    _journey("J3", "C1", "app/product_view web/product_view web/checkout web/purchase", True, 1),
    _journey("J4", "C3", "web/page_view", False, day=1),
]


def test_figures_of_small_journeys() -> None:
    data = summarize(JOURNEYS, title="t", generated_at=T0)
    assert (data.journeys, data.customers, data.converted, data.multichannel) == (4, 3, 2, 3)
    assert data.ropo == 1
    flows = {(f.source, f.target): f.value for f in data.flows}
    assert flows[(0, "web"), (1, "pos")] == 1
    assert flows[(1, "pos"), (2, "converted")] == 1
    assert flows[(0, "web"), (1, "ended")] == 1  # J4
    assert flows[(0, "email"), (1, "web")] == 1
    assert flows[(1, "web"), (2, "converted")] == 1 and flows[(1, "web"), (2, "ended")] == 1
    # stage reached or later; J1's till purchase counts for the cart stages too
    assert data.funnel == (
        ("Journeys", 1, 3),
        ("Viewed a product", 0, 3),
        ("Added to cart", 0, 3),
        ("Checked out", 0, 2),
        ("Purchased", 0, 2),
    )
    attribution = {c: (f, last, lin) for c, f, last, lin in data.attribution}
    assert attribution["web"] == (1.0, 2.0, pytest.approx(2 / 3 + 3 / 4))
    assert attribution["app"] == (1.0, 0.0, pytest.approx(1 / 4))
    assert attribution["pos"] == (0.0, 0.0, pytest.approx(1 / 3))
    assert [(d.day, s, c) for d, s, c in data.daily] == [(1, 1, 1), (2, 3, 1)]
    assert data.samples[0].journey_id == "J1"  # converted multichannel journeys first


def test_the_page_escapes_and_loads_nothing_from_outside() -> None:
    hostile = _journey("J<script>alert(1)</script>", "C&<b>", "web/page_view", False)
    page = render(summarize([hostile], title="<title> & co", generated_at=T0))
    assert "<script" not in page and "&lt;script&gt;" in page and "C&amp;&lt;b&gt;" in page
    assert "src=" not in page and "href=" not in page and "@import" not in page
    assert "default-src 'none'" in page


def test_journeys_from_a_truth_file() -> None:
    lines = [record.line() for record in medium().records]
    journeys = journeys_from_truth(lines)
    assert len(journeys) == medium().summary["journeys"]
    assert sum(j.converted for j in journeys) == medium().summary["journeys_converted"]
    assert all(j.touches and j.first <= j.last for j in journeys)


CHECK = """(() => {
  const n = s => document.querySelectorAll(s).length;
  const size = s => { const r = document.querySelector(s).getBoundingClientRect();
                      return [Math.round(r.width), Math.round(r.height)]; };
  const link = document.querySelector('#sankey path.link').getBBox();
  return {
    links: n('#sankey path.link'), nodes: n('#sankey rect.node'),
    funnel: n('#funnel rect.bar'), attribution: n('#attribution rect.bar'),
    days: n('#timeline circle'), samples: n('#journeys tbody tr'),
    sizes: ['#sankey svg', '#funnel svg', '#attribution svg', '#timeline svg'].map(size),
    link: [link.width, link.height],
  };
})()"""


def _near(pixel: bytes, color: str, slack: int = 3) -> bool:
    rgb = bytes.fromhex(color[1:])
    return all(abs(a - b) <= slack for a, b in zip(pixel, rgb, strict=False))


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt install chromium)")
def test_the_report_renders_in_chromium_without_errors(tmp_path: Path) -> None:
    lines = [record.line() for record in medium().records]
    data = summarize(journeys_from_truth(lines), title="Simulated journeys", generated_at=T0)
    page = tmp_path / "report.html"
    page.write_text(render(data), encoding="utf-8")
    load = open_page(page, CHECK, detail="#sankey svg")
    assert load.errors == []
    assert load.requests == [page.resolve().as_uri()]  # nothing else: works offline
    facts = load.facts
    assert facts["links"] == len(data.flows) > 10
    assert facts["nodes"] > 10 and facts["funnel"] == 10
    assert facts["attribution"] == 3 * len(data.attribution)
    assert facts["days"] == len(data.daily) and facts["samples"] == 25
    assert all(w > 500 and h > 100 for w, h in facts["sizes"])
    assert facts["link"][0] > 50
    # screenshot: the page is drawn, and the Sankey shows the channels' colours
    (tmp_path / "report.png").write_bytes(load.screenshot)
    assert png_pixels(load.screenshot)[1] > 1500  # the whole page, not one screen
    width, height, rows = png_pixels(load.detail)
    assert width > 500 and height > 200
    step = 4 if len(rows[0]) == width * 4 else 3
    pixels = [row[i : i + 3] for row in rows for i in range(0, len(row), step)]
    for channel in ("web", "email", "pos", "converted"):
        assert sum(_near(p, COLORS[channel]) for p in pixels) > 200, channel


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt install chromium)")
def test_the_browser_check_sees_errors_and_outside_requests(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    body = render(summarize(JOURNEYS, title="t", generated_at=T0))
    body = body.replace("</main>", '<img src="https://cdn.example.com/x.png"></main>')
    page.write_text(body, encoding="utf-8")
    load = open_page(page)
    assert any("cdn.example.com" in error for error in load.errors), load.errors
