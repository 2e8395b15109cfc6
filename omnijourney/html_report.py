"""One self-contained HTML page of the journeys: Sankey, funnel, attribution, time, samples.

Pure: journeys in (`JourneyView`, from ClickHouse or a simulation's truth), a string out.
The charts are inline SVG drawn here, styles are inline, and there is no script: the page
works offline, and its Content-Security-Policy forbids loading anything from anywhere.
"""

from __future__ import annotations

import html
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import orjson

CHANNEL_ORDER: Final = ("web", "app", "email", "sms", "pos", "callcenter", "crm")
COLORS: Final = {
    "web": "#2563eb",
    "app": "#7c3aed",
    "email": "#db2777",
    "sms": "#0891b2",
    "pos": "#059669",
    "callcenter": "#d97706",
    "crm": "#6b7280",
    "converted": "#16a34a",
    "ended": "#9ca3af",
}
LABELS: Final = {
    "web": "Web",
    "app": "App",
    "email": "Email",
    "sms": "SMS",
    "pos": "Store",
    "callcenter": "Call center",
    "crm": "CRM",
    "converted": "Purchase",
    "ended": "No purchase",
}
FUNNEL: Final = (
    ("Journeys", ""),
    ("Viewed a product", "product_view"),
    ("Added to cart", "add_to_cart"),
    ("Checked out", "checkout"),
    ("Purchased", "purchase"),
)
_ONLINE: Final = frozenset({"web", "app"})
_CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'"
)


@dataclass(frozen=True, slots=True)
class JourneyView:
    """One journey as the report needs it."""

    journey_id: str
    customer: str
    first: datetime
    last: datetime
    touches: tuple[tuple[str, str], ...]
    """(channel, type) of each touch in event-time order."""
    converted: bool

    @property
    def path(self) -> tuple[str, ...]:
        """Channels in order, repeats collapsed (web, web, pos -> web, pos)."""
        path: list[str] = []
        for channel, _ in self.touches:
            if not path or path[-1] != channel:
                path.append(channel)
        return tuple(path)

    @property
    def ropo(self) -> bool:
        """Researched online (web/app), then bought in a store."""
        online = False
        for channel, type_ in self.touches:
            if type_ == "purchase" and channel == "pos" and online:
                return True
            online = online or channel in _ONLINE
        return False


@dataclass(frozen=True, slots=True)
class Flow:
    """A Sankey link: journeys going from one (step, node) to the next."""

    source: tuple[int, str]
    target: tuple[int, str]
    value: int


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything the page shows, computed from the journeys."""

    title: str
    generated_at: datetime
    journeys: int
    customers: int
    converted: int
    multichannel: int
    ropo: int
    flows: tuple[Flow, ...]
    funnel: tuple[tuple[str, int, int], ...]
    """(stage, single-channel journeys, multichannel journeys) reaching it or a later stage."""
    attribution: tuple[tuple[str, float, float, float], ...]
    """(channel, first-touch, last-touch, linear) conversions credited."""
    daily: tuple[tuple[date, int, int], ...]
    """(day, journeys started, of which converted)."""
    top_paths: tuple[tuple[str, int, int], ...]
    samples: tuple[JourneyView, ...]


def _order(channel: str) -> int:
    return CHANNEL_ORDER.index(channel) if channel in CHANNEL_ORDER else len(CHANNEL_ORDER)


def _flows(journeys: Sequence[JourneyView], steps: int) -> tuple[Flow, ...]:
    counts: Counter[tuple[tuple[int, str], tuple[int, str]]] = Counter()
    for journey in journeys:
        path = journey.path[:steps]
        for step, (here, there) in enumerate(itertools.pairwise(path)):
            counts[(step, here), (step + 1, there)] += 1
        if path:
            outcome = "converted" if journey.converted else "ended"
            counts[(len(path) - 1, path[-1]), (len(path), outcome)] += 1
    return tuple(Flow(s, t, n) for (s, t), n in sorted(counts.items(), key=_flow_key))


def _flow_key(item: tuple[tuple[tuple[int, str], tuple[int, str]], int]) -> tuple[object, ...]:
    (source, target), _ = item
    return (source[0], _node_rank(source[1]), _node_rank(target[1]))


def _node_rank(name: str) -> int:
    return {"converted": 100, "ended": 101}.get(name, _order(name))


def _funnel(journeys: Sequence[JourneyView]) -> tuple[tuple[str, int, int], ...]:
    reached = [[0, 0] for _ in FUNNEL]
    rank = {type_: n for n, (_, type_) in enumerate(FUNNEL) if type_}
    for journey in journeys:
        stage = max((rank.get(type_, 0) for _, type_ in journey.touches), default=0)
        multi = int(len(set(journey.path)) > 1)
        for n in range(stage + 1):
            reached[n][multi] += 1
    return tuple((label, s, m) for (label, _), (s, m) in zip(FUNNEL, reached, strict=True))


def _attribution(journeys: Sequence[JourneyView]) -> tuple[tuple[str, float, float, float], ...]:
    first: Counter[str] = Counter()
    last: Counter[str] = Counter()
    linear: defaultdict[str, float] = defaultdict(float)
    for journey in journeys:
        touches = [c for c, t in journey.touches if c != "crm"]
        types = [t for c, t in journey.touches if c != "crm"]
        if not journey.converted or "purchase" not in types:
            continue
        upto = touches[: types.index("purchase") + 1]
        first[upto[0]] += 1
        last[upto[-2] if len(upto) > 1 else upto[-1]] += 1  # the touch that led to the purchase
        for channel in upto:
            linear[channel] += 1 / len(upto)
    channels = sorted(set(first) | set(last) | set(linear), key=_order)
    return tuple((c, float(first[c]), float(last[c]), linear[c]) for c in channels)


def _daily(journeys: Sequence[JourneyView]) -> tuple[tuple[date, int, int], ...]:
    started: Counter[date] = Counter()
    converted: Counter[date] = Counter()
    for journey in journeys:
        day = journey.first.date()
        started[day] += 1
        converted[day] += journey.converted
    return tuple((day, started[day], converted[day]) for day in sorted(started))


def _samples(journeys: Sequence[JourneyView], count: int) -> tuple[JourneyView, ...]:
    def priority(journey: JourneyView) -> tuple[object, ...]:
        multi = len(set(journey.path)) > 1
        return (not (multi and journey.converted), not multi, journey.first, journey.journey_id)

    return tuple(sorted(journeys, key=priority)[:count])


def summarize(
    journeys: Iterable[JourneyView],
    *,
    title: str,
    generated_at: datetime,
    steps: int = 5,
    samples: int = 25,
) -> ReportData:
    """The report's figures from the journeys (Sankey limited to the first `steps` channels)."""
    views = list(journeys)
    paths: Counter[str] = Counter()
    path_conversions: Counter[str] = Counter()
    for journey in views:
        label = " > ".join(LABELS.get(c, c) for c in journey.path)
        paths[label] += 1
        path_conversions[label] += journey.converted
    top = tuple((p, n, path_conversions[p]) for p, n in paths.most_common(10))
    return ReportData(
        title=title,
        generated_at=generated_at,
        journeys=len(views),
        customers=len({j.customer for j in views}),
        converted=sum(j.converted for j in views),
        multichannel=sum(len(set(j.path)) > 1 for j in views),
        ropo=sum(j.ropo for j in views),
        flows=_flows(views, steps),
        funnel=_funnel(views),
        attribution=_attribution(views),
        daily=_daily(views),
        top_paths=top,
        samples=_samples(views, samples),
    )


# --- drawing --------------------------------------------------------------------------------


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _pct(part: float, whole: float) -> str:
    return "0%" if whole == 0 else f"{100 * part / whole:.1f}%"


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _sankey(flows: Sequence[Flow], width: int = 960, height: int = 420) -> str:
    if not flows:
        return '<p class="empty">No journeys.</p>'
    inflow: Counter[tuple[int, str]] = Counter()
    outflow: Counter[tuple[int, str]] = Counter()
    for flow in flows:
        outflow[flow.source] += flow.value
        inflow[flow.target] += flow.value
    nodes = sorted(set(inflow) | set(outflow), key=lambda n: (n[0], _node_rank(n[1])))
    columns: defaultdict[int, list[tuple[int, str]]] = defaultdict(list)
    for node in nodes:
        columns[node[0]].append(node)
    value = {n: max(inflow[n], outflow[n]) for n in nodes}
    pad, node_w, left, right = 12, 14, 8, 110
    scale = min(
        (height - pad * (len(col) - 1)) / sum(value[n] for n in col) for col in columns.values()
    )
    last = max(columns)
    span = (width - left - right - node_w) / max(1, last)
    x = {c: left + c * span for c in columns}
    y: dict[tuple[int, str], float] = {}
    for col in columns.values():
        top = 0.0
        for node in col:
            y[node] = top
            top += value[node] * scale + pad
    out_used: Counter[tuple[int, str]] = Counter()
    in_used: Counter[tuple[int, str]] = Counter()
    links = []
    for flow in sorted(flows, key=lambda f: (f.source[0], _node_rank(f.target[1]))):
        thick = flow.value * scale
        y0 = y[flow.source] + out_used[flow.source] * scale + thick / 2
        y1 = y[flow.target] + in_used[flow.target] * scale + thick / 2
        out_used[flow.source] += flow.value
        in_used[flow.target] += flow.value
        x0, x1 = x[flow.source[0]] + node_w, x[flow.target[0]]
        mid = (x0 + x1) / 2
        tip = (
            f"{LABELS.get(flow.source[1], flow.source[1])} (step {flow.source[0] + 1}) -> "
            f"{LABELS.get(flow.target[1], flow.target[1])}: {flow.value:,} journeys"
        )
        links.append(
            f'<path class="link" d="M{x0:.1f},{y0:.1f} C{mid:.1f},{y0:.1f} {mid:.1f},{y1:.1f} '
            f'{x1:.1f},{y1:.1f}" stroke="{COLORS.get(flow.source[1], "#888")}" '
            f'stroke-width="{max(thick, 1):.1f}"><title>{_esc(tip)}</title></path>'
        )
    rects = []
    for node in nodes:
        h = max(value[node] * scale, 1.0)
        label = f"{LABELS.get(node[1], node[1])} {value[node]:,}"
        tx = x[node[0]] + node_w + 4
        rects.append(
            f'<rect class="node" x="{x[node[0]]:.1f}" y="{y[node]:.1f}" width="{node_w}" '
            f'height="{h:.1f}" fill="{COLORS.get(node[1], "#888")}">'
            f"<title>{_esc(label)}</title></rect>"
        )
        if h >= 9:
            rects.append(f'<text x="{tx:.1f}" y="{y[node] + h / 2 + 4:.1f}">{_esc(label)}</text>')
    steps = "".join(
        f'<text class="axis" x="{x[c]:.1f}" y="{height + 18}">step {c + 1}</text>'
        for c in columns
        if c < last
    )
    return (
        f'<svg viewBox="0 0 {width} {height + 24}" role="img" aria-label="channel transitions">'
        f'<g class="links">{"".join(links)}</g><g>{"".join(rects)}</g>{steps}</svg>'
    )


def _funnel_svg(funnel: Sequence[tuple[str, int, int]], width: int = 960) -> str:
    total = max(1, funnel[0][1] + funnel[0][2]) if funnel else 1
    label_w, bar_w, row = 150, width - 150 - 170, 34
    rows = []
    previous = None
    for n, (label, single, multi) in enumerate(funnel):
        y = n * row
        ws, wm = bar_w * single / total, bar_w * multi / total
        count = single + multi
        step = "" if previous is None else f" ({_pct(count, previous)} of previous)"
        previous = count
        rows.append(
            f'<text x="0" y="{y + 21}">{_esc(label)}</text>'
            f'<rect class="bar single" x="{label_w}" y="{y + 6}" width="{ws:.1f}" height="22">'
            f"<title>{single:,} single-channel journeys</title></rect>"
            f'<rect class="bar multi" x="{label_w + ws:.1f}" y="{y + 6}" width="{wm:.1f}" '
            f'height="22"><title>{multi:,} multichannel journeys</title></rect>'
            f'<text x="{label_w + ws + wm + 6:.1f}" y="{y + 21}">{count:,}{_esc(step)}</text>'
        )
    height = row * len(funnel)
    return (
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="funnel">{"".join(rows)}</svg>'
    )


def _attribution_svg(rows: Sequence[tuple[str, float, float, float]], width: int = 960) -> str:
    if not rows:
        return '<p class="empty">No conversions.</p>'
    top = max(max(r[1:]) for r in rows) or 1.0
    label_w, bar_w, row = 110, width - 110 - 140, 66
    out = []
    for n, (channel, first, last, linear) in enumerate(rows):
        y = n * row
        out.append(f'<text x="0" y="{y + 34}">{_esc(LABELS.get(channel, channel))}</text>')
        for k, (model, amount) in enumerate(
            (("first touch", first), ("last touch", last), ("linear", linear))
        ):
            w = bar_w * amount / top
            by = y + 4 + k * 19
            out.append(
                f'<rect class="bar {model.split()[0]}" x="{label_w}" y="{by}" width="{w:.1f}" '
                f'height="16" fill="{COLORS.get(channel, "#888")}">'
                f"<title>{_esc(f'{model}: {_num(amount)} conversions')}</title></rect>"
                f'<text class="small" x="{label_w + w + 5:.1f}" y="{by + 13}">'
                f"{_esc(model)} {_num(amount)}</text>"
            )
    return (
        f'<svg viewBox="0 0 {width} {row * len(rows)}" role="img" aria-label="attribution">'
        f"{''.join(out)}</svg>"
    )


def _timeline_svg(
    daily: Sequence[tuple[date, int, int]], width: int = 960, height: int = 240
) -> str:
    if not daily:
        return '<p class="empty">No journeys.</p>'
    left, bottom, top_pad = 50, 26, 10
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    peak = max(s for _, s, _ in daily) or 1
    step = plot_w / max(1, len(daily) - 1)

    def point(n: int, value: int) -> str:
        return f"{left + n * step:.1f},{top_pad + plot_h * (1 - value / peak):.1f}"

    started = " ".join(point(n, s) for n, (_, s, _) in enumerate(daily))
    converted = " ".join(point(n, c) for n, (_, _, c) in enumerate(daily))
    base_y = top_pad + plot_h
    area = f"{left:.1f},{base_y:.1f} {started} {left + (len(daily) - 1) * step:.1f},{base_y:.1f}"
    ticks = []
    every = max(1, len(daily) // 10)
    for n, (day, _, _) in enumerate(daily):
        if n % every == 0:
            ticks.append(
                f'<text class="axis" x="{left + n * step:.1f}" y="{height - 6}" '
                f'text-anchor="middle">{day.strftime("%b %d")}</text>'
            )
    for value in (0, peak // 2, peak):
        yv = top_pad + plot_h * (1 - value / peak)
        ticks.append(
            f'<line class="grid" x1="{left}" x2="{width - 10}" y1="{yv:.1f}" y2="{yv:.1f}"/>'
            f'<text class="axis" x="{left - 6}" y="{yv + 4:.1f}" text-anchor="end">'
            f"{value:,}</text>"
        )
    dots = "".join(
        f'<circle cx="{point(n, s).split(",")[0]}" cy="{point(n, s).split(",")[1]}" r="3">'
        f"<title>{day.isoformat()}: {s:,} journeys started, {c:,} converted</title></circle>"
        for n, (day, s, c) in enumerate(daily)
    )
    return (
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="journeys over time">'
        f"{''.join(ticks)}"
        f'<polygon class="started" points="{area}"/>'
        f'<polyline class="started-line" points="{started}"/>'
        f'<polyline class="converted-line" points="{converted}"/>'
        f'<g class="dots">{dots}</g></svg>'
    )


def _chips(path: Sequence[str]) -> str:
    return "".join(
        f'<span class="chip" style="background:{COLORS.get(c, "#888")}">'
        f"{_esc(LABELS.get(c, c))}</span>"
        for c in path
    )


def _duration(journey: JourneyView) -> str:
    seconds = int((journey.last - journey.first).total_seconds())
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds // 60} min"


def _samples_table(samples: Sequence[JourneyView]) -> str:
    rows = "".join(
        "<tr>"
        f"<td><code>{_esc(j.journey_id)}</code></td><td><code>{_esc(j.customer)}</code></td>"
        f"<td>{_esc(j.first.strftime('%Y-%m-%d %H:%M'))}</td><td>{_duration(j)}</td>"
        f"<td class='num'>{len(j.touches):,}</td><td>{_chips(j.path)}</td>"
        f"<td>{'purchase' if j.converted else '-'}</td>"
        "</tr>"
        for j in samples
    )
    return (
        '<table class="samples"><thead><tr><th>journey</th><th>customer</th><th>started</th>'
        "<th>duration</th><th>touches</th><th>path</th><th>outcome</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _paths_table(paths: Sequence[tuple[str, int, int]]) -> str:
    rows = "".join(
        f"<tr><td>{_esc(p)}</td><td class='num'>{n:,}</td><td class='num'>{c:,}</td>"
        f"<td class='num'>{_pct(c, n)}</td></tr>"
        for p, n, c in paths
    )
    return (
        '<table class="paths"><thead><tr><th>path</th><th>journeys</th><th>converted</th>'
        f"<th>rate</th></tr></thead><tbody>{rows}</tbody></table>"
    )


_STYLE: Final = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 color:#111827;background:#f9fafb}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:0 0 8px}
.meta{color:#6b7280;margin-bottom:16px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:16px;margin:16px 0}
.kpis{display:flex;gap:12px;flex-wrap:wrap}
.kpi{flex:1;min-width:140px;background:#fff;border:1px solid #e5e7eb;border-radius:8px;
 padding:12px}
.kpi b{display:block;font-size:22px}.kpi span{color:#6b7280}
svg{width:100%;height:auto;display:block;font-size:12px}
svg text{fill:#111827}svg .axis,svg .small{fill:#6b7280;font-size:11px}
path.link{fill:none;stroke-opacity:.35}path.link:hover{stroke-opacity:.75}
rect.single{fill:#93c5fd}rect.multi{fill:#2563eb}
.grid{stroke:#e5e7eb}polygon.started{fill:#bfdbfe;opacity:.6}
polyline.started-line{fill:none;stroke:#2563eb;stroke-width:2}
polyline.converted-line{fill:none;stroke:#16a34a;stroke-width:2}
.dots circle{fill:#2563eb}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #f3f4f6;vertical-align:top}
td.num{text-align:right}
.chip{display:inline-block;color:#fff;border-radius:10px;padding:0 7px;margin:1px 2px;
 font-size:12px}
.note,.empty{color:#6b7280}
"""


def _legend(items: Iterable[tuple[str, str]]) -> str:
    return (
        '<div class="legend">'
        + "".join(f'<span><i style="background:{c}"></i>{_esc(t)}</span>' for t, c in items)
        + "</div>"
    )


def render(data: ReportData) -> str:
    """The page."""
    kpis = [
        (f"{data.journeys:,}", "journeys"),
        (f"{data.customers:,}", "customers"),
        (_pct(data.converted, data.journeys), f"converted ({data.converted:,})"),
        (_pct(data.multichannel, data.journeys), "multichannel"),
        (_pct(data.ropo, data.converted), "of purchases researched online, bought in store"),
    ]
    kpi_html = "".join(
        f'<div class="kpi"><b>{_esc(v)}</b><span>{_esc(t)}</span></div>' for v, t in kpis
    )
    channels = sorted({c for f in data.flows for _, c in (f.source, f.target)}, key=_node_rank)
    legend = _legend((LABELS.get(c, c), COLORS.get(c, "#888")) for c in channels)
    facts = orjson.dumps(
        {"journeys": data.journeys, "converted": data.converted, "flows": len(data.flows)}
    ).decode()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_esc(data.title)}</title><style>{_STYLE}</style></head>
<body><main data-facts='{_esc(facts)}'>
<h1>{_esc(data.title)}</h1>
<div class="meta">generated {_esc(data.generated_at.strftime("%Y-%m-%d %H:%M UTC"))}</div>
<div class="kpis">{kpi_html}</div>
<section id="sankey"><h2>Channel transitions in journeys</h2>
<p class="note">Each band is journeys moving from one channel to the next (repeats in one
channel collapsed), ending in a purchase or not.</p>{legend}{_sankey(data.flows)}</section>
<section id="funnel"><h2>Cross-channel funnel</h2>
<p class="note">Journeys reaching each stage or a later one, in any channel (a till purchase
skips the online cart).</p>
{_legend((("single channel", "#93c5fd"), ("multichannel", "#2563eb")))}
{_funnel_svg(data.funnel)}</section>
<section id="attribution"><h2>Attribution by channel</h2>
<p class="note">Conversions credited to the first touch, the touch before the purchase, or
shared evenly over the touches up to it.</p>{_attribution_svg(data.attribution)}</section>
<section id="timeline"><h2>Journeys over time</h2>
{_legend((("journeys started", "#2563eb"), ("of which converted", "#16a34a")))}
{_timeline_svg(data.daily)}</section>
<section id="paths"><h2>Top journey paths</h2>{_paths_table(data.top_paths)}</section>
<section id="journeys"><h2>Sample journeys</h2>{_samples_table(data.samples)}</section>
</main></body></html>
"""


def journeys_from_truth(lines: Iterable[bytes | str]) -> list[JourneyView]:
    """The journeys of a simulation's truth file (customers are the true people)."""
    out = []
    for line in lines:
        if not line.strip():
            continue
        record = orjson.loads(line)
        if record.get("type") != "journey":
            continue
        touches = tuple((t.split("/", 1)[0], t.split("/", 1)[1]) for t in record["touches"])
        out.append(
            JourneyView(
                journey_id=record["journey"],
                customer=record["person"],
                first=datetime.fromisoformat(record["first"].replace("Z", "+00:00")),
                last=datetime.fromisoformat(record["last"].replace("Z", "+00:00")),
                touches=touches,
                converted=record["converted"],
            )
        )
    return out


JOURNEYS_SQL = (
    "SELECT t.journey_id, any(t.customer_id), min(t.occurred_at), max(t.occurred_at),"
    " arraySort(x -> x.1, groupArray((t.position, t.channel, t.type))),"
    " max(j.status = 'converted')"
    " FROM touchpoints_current AS t LEFT JOIN journeys_current AS j"
    " ON j.journey_id = t.journey_id WHERE t.journey_id != '' GROUP BY t.journey_id"
)
"""Every journey the pipeline wrote to ClickHouse, touches in journey order, survivors resolved."""


def journeys_from_rows(rows: Iterable[Sequence[Any]]) -> list[JourneyView]:
    """The journeys of JOURNEYS_SQL's result rows."""
    return [
        JourneyView(
            journey_id=journey,
            customer=customer,
            first=first,
            last=last,
            touches=tuple((channel, type_) for _, channel, type_ in steps),
            converted=bool(converted),
        )
        for journey, customer, first, last, steps, converted in rows
    ]


def write_page(
    journeys: Sequence[JourneyView], path: Path, *, title: str, generated_at: datetime
) -> ReportData:
    """Summarize the journeys and write the page to path (directories created); the summary."""
    data = summarize(journeys, title=title, generated_at=generated_at)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(data), encoding="utf-8")
    return data
