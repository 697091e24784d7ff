"""The report's HTML: one self-contained page (inline CSS, JS and SVG; no external request).

Small sections (risers, unavailable videos, failed posts, quota) are rendered here with every
text escaped; the video table is drawn by the page's script from the embedded JSON, one page
of rows (and sparklines) at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from html import escape
from typing import Any

from worker.outputs.report.data import SPARK_POINTS, WINDOWS, ReportData
from worker.times import utc_stamp

SPARK_W, SPARK_H = 120, 28
SHOWN = 500  # rows of the unavailable and failed lists rendered; the rest are counted
COLUMNS = ["title", "channel", "vid_id", "path", "status", "views",
           *(f"gain_{days}d" for days in WINDOWS), "spark"]
ROWS_PER_WRITE = 2000

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.note{color:#5b6475;font-size:12px;max-width:900px}
table{border-collapse:collapse;background:#fff}td,th{padding:3px 8px;border-bottom:1px solid #e4e7ec;
text-align:left;vertical-align:middle}th{background:#f0f2f5;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.up{color:#137333}.down{color:#b3261e}
.cols{display:flex;gap:32px;flex-wrap:wrap;align-items:flex-start}
td:first-child{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.cols td:first-child{max-width:250px}#videos td:first-child{max-width:360px}
.spark polyline{fill:none;stroke:#2a6fdb;stroke-width:1.5}
.gone{color:#b3261e;font-weight:600}#controls{margin:8px 0;display:flex;gap:12px;align-items:center}
#search{width:320px;padding:4px 8px}.bar{fill:#2a6fdb}.axis{font-size:10px;fill:#5b6475}
"""

SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var rows = data.videos, PAGE = 25, SW = __SW__, SH = __SH__, NS = "http://www.w3.org/2000/svg";
  var C = {title: 0, channel: 1, vid: 2, path: 3, status: 4, views: 5, g7: 6, g30: 7, spark: 8};
  var state = {query: "", sort: "views", page: 0}, shown = rows, hay = null;
  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }
  function num(v) { return v === null || v === undefined ? "" : v.toLocaleString("en-US"); }
  function signed(v) { return v === null || v === undefined ? "" : (v > 0 ? "+" : "") + num(v); }
  function spark(flat) {
    var svg = document.createElementNS(NS, "svg");
    svg.setAttribute("class", "spark"); svg.setAttribute("width", SW); svg.setAttribute("height", SH);
    svg.setAttribute("viewBox", "0 0 " + SW + " " + SH);
    if (flat.length >= 2) {
      var line = document.createElementNS(NS, "polyline");
      line.setAttribute("points", sparkPoints(flat)); svg.appendChild(line);
    }
    return svg;
  }
  function sparkPoints(flat) {
    var ts = [], vs = [], i;
    for (i = 0; i < flat.length; i += 2) { ts.push(flat[i]); vs.push(flat[i + 1]); }
    if (ts.length === 1) { ts.push(ts[0] + 1); vs.push(vs[0]); }
    var t0 = Math.min.apply(null, ts), t1 = Math.max.apply(null, ts);
    var v0 = Math.min.apply(null, vs), v1 = Math.max.apply(null, vs), out = [];
    for (i = 0; i < ts.length; i++) {
      var x = t1 > t0 ? (ts[i] - t0) / (t1 - t0) * (SW - 4) + 2 : (i / (ts.length - 1)) * (SW - 4) + 2;
      var y = v1 > v0 ? SH - 2 - (vs[i] - v0) / (v1 - v0) * (SH - 4) : SH / 2;
      out.push(x.toFixed(1) + "," + y.toFixed(1));
    }
    return out.join(" ");
  }
  function gainCell(v) { return el("td", signed(v), "n" + (v > 0 ? " up" : v < 0 ? " down" : "")); }
  function key(row) {
    if (state.sort === "title") return row[C.title].toLowerCase();
    var v = row[C[state.sort]]; return v === null ? -Infinity : v;
  }
  function apply() {
    var q = state.query.toLowerCase(), i;
    if (q) {
      if (!hay) { hay = rows.map(function (r) { return (r[C.title] + "\u0001" + r[C.channel] + "\u0001" +
        r[C.vid] + "\u0001" + r[C.path] + "\u0001" + r[C.status]).toLowerCase(); }); }
      shown = [];
      for (i = 0; i < rows.length; i++) if (hay[i].indexOf(q) >= 0) shown.push(rows[i]);
    } else { shown = rows.slice(); }
    var asc = state.sort === "title";
    shown.sort(function (a, b) {
      var x = key(a), y = key(b); return x === y ? 0 : (x < y) === asc ? -1 : 1;
    });
    state.page = 0; draw();
  }
  function draw() {
    var body = document.getElementById("videos-body"), pages = Math.max(1, Math.ceil(shown.length / PAGE));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    body.textContent = "";
    shown.slice(state.page * PAGE, state.page * PAGE + PAGE).forEach(function (r) {
      var tr = el("tr"), link = el("a", r[C.title] || r[C.vid]), first = el("td");
      link.href = "https://www.youtube.com/watch?v=" + encodeURIComponent(r[C.vid]); link.title = r[C.path];
      first.appendChild(link);
      if (r[C.status]) first.appendChild(el("span", " " + r[C.status], "gone"));
      tr.appendChild(first); tr.appendChild(el("td", r[C.channel]));
      tr.appendChild(el("td", num(r[C.views]), "n")); tr.appendChild(gainCell(r[C.g7]));
      tr.appendChild(gainCell(r[C.g30]));
      var cell = el("td"); cell.appendChild(spark(r[C.spark])); tr.appendChild(cell);
      body.appendChild(tr);
    });
    document.getElementById("page-info").textContent = "page " + (state.page + 1) + " of " + pages +
      " (" + shown.length.toLocaleString("en-US") + " of " + rows.length.toLocaleString("en-US") + " videos)";
  }
  var timer = null;
  document.getElementById("search").addEventListener("input", function (e) {
    clearTimeout(timer); timer = setTimeout(function () { state.query = e.target.value; apply(); }, 150);
  });
  document.getElementById("sort").addEventListener("change", function (e) {
    state.sort = e.target.value; apply();
  });
  document.getElementById("prev").addEventListener("click", function () { state.page--; draw(); });
  document.getElementById("next").addEventListener("click", function () { state.page++; draw(); });
  apply();
})();
""".replace("__SW__", str(SPARK_W)).replace("__SH__", str(SPARK_H))


def render(data: ReportData, site_name: str) -> Iterator[str]:
    """The page, in parts to write one after another (the video rows are never one string)."""
    generated = utc_stamp(data.generated_at)
    yield (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
           f'<meta name="viewport" content="width=device-width,initial-scale=1">\n'
           f"<title>postrefresh report: {escape(site_name)}</title>\n<style>{STYLE}</style></head>\n<body>\n"
           f"<h1>History of {escape(site_name)}</h1>\n"
           f'<p class="note">Generated {escape(generated)} from every post\'s front matter (current values '
           f"and <code>history:</code>) and the videos' history CSVs: {len(data.rows):,} videos"
           f"{_unreadable(data)}.</p>\n")
    yield ('<h2>Videos</h2>\n<div id="controls"><input id="search" type="search" '
           'placeholder="Search title, channel, id, path" aria-label="search">'
           '<label>sort <select id="sort"><option value="views">views</option>'
           '<option value="g7">7-day gain</option><option value="g30">30-day gain</option>'
           '<option value="title">title</option></select></label>'
           '<button id="prev">&lsaquo; prev</button><button id="next">next &rsaquo;</button>'
           '<span id="page-info"></span></div>\n'
           '<table id="videos"><thead><tr><th>title</th><th>channel</th><th class="n">views</th>'
           '<th class="n">7 d</th><th class="n">30 d</th><th>views over time</th></tr></thead>'
           '<tbody id="videos-body"></tbody></table>\n')
    yield _risers(data)
    yield _unavailable(data)
    yield _problems(data)
    yield _quota(data)
    yield from _data_script(data)
    yield f"<script>{SCRIPT}</script>\n</body></html>\n"


def _data_script(data: ReportData) -> Iterator[str]:
    rest = {"generated_at": utc_stamp(data.generated_at), "columns": COLUMNS, "spark_points": SPARK_POINTS,
            "risers": {str(days): top for days, top in data.risers.items()},
            "unavailable": data.unavailable, "problems": data.problems, "quota": data.quota,
            "unreadable": data.unreadable, "unreadable_posts": data.unreadable_posts}
    yield '<script type="application/json" id="report-data">{"videos":['
    for start in range(0, len(data.rows), ROWS_PER_WRITE):
        chunk = ",".join(data.rows[start:start + ROWS_PER_WRITE]).replace("</", "<\\/")
        yield ("," if start else "") + chunk
    yield "]," + _json(rest)[1:] + "</script>\n"


def _json(value: Any) -> str:
    # "</" inside a script element would end it early; "<\/" is the same string to JSON.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def _unreadable(data: ReportData) -> str:
    return f"; unreadable posts now: {data.unreadable:,}" if data.unreadable else ""


def _risers(data: ReportData) -> str:
    parts = ['<h2>Top risers</h2>\n<p class="note">Gain is computed from each video\'s series of views: '
             "the value at its latest point minus the last value at or before the report time minus 7 "
             "(or 30) days, or minus its first point when the series starts later. Videos gaining nothing "
             'are not listed.</p>\n<div class="cols">']
    for days, top in data.risers.items():
        rows = "".join(
            f'<tr><td>{escape(item["title"] or item["vid_id"])}</td><td class="n up">+{item["gain"]:,}</td>'
            f'<td>{sparkline(json.loads(data.rows[item["row"]])[-1])}</td></tr>'
            for item in top)
        parts.append(f'<div><h3>last {days} days</h3><table id="risers-{days}"><tr><th>title</th>'
                     f'<th class="n">gain</th><th>views</th></tr>{rows or _none(3)}</table></div>')
    return "".join(parts) + "</div>\n"


def _unavailable(data: ReportData) -> str:
    rows = "".join(f'<tr><td>{escape(item["title"] or item["vid_id"])}</td><td>{escape(item["vid_id"])}</td>'
                   f'<td>{escape(item["at"] or "?")}</td></tr>' for item in data.unavailable[:SHOWN])
    return (f"<h2>Unavailable videos ({len(data.unavailable):,})</h2>\n<p class=\"note\">Marked "
            '<code>status: "unavailable"</code> after missing from the API in a row of checks; '
            "since = the refresh that marked it.</p>\n<table id=\"unavailable\"><tr><th>title</th>"
            f"<th>vid_id</th><th>since</th></tr>{rows or _none(3)}</table>{_more(data.unavailable)}\n")


def _problems(data: ReportData) -> str:
    rows = "".join(f'<tr><td>{escape(item["path"])}</td><td>{escape(item["reason"])}</td>'
                   f'<td>{escape(item["at"])}</td></tr>' for item in data.problems[:SHOWN])
    return (f"<h2>Posts that failed ({len(data.problems):,})</h2>\n<p class=\"note\">The bad posts of "
            "the last complete <code>postrefresh run</code> (all posts, not stopped early), with "
            "why.</p>\n<table id=\"problems\"><tr><th>post</th><th>reason</th><th>seen</th></tr>"
            f"{rows or _none(3)}</table>{_more(data.problems)}\n{_unreadable_now(data)}")


def _unreadable_now(data: ReportData) -> str:
    if not data.unreadable:
        return ""
    rows = "".join(f'<tr><td>{escape(item["path"])}</td><td>{escape(item["reason"])}</td></tr>'
                   for item in data.unreadable_posts)
    more = data.unreadable - len(data.unreadable_posts)
    tail = f'<p class="note">and {more:,} more.</p>' if more > 0 else ""
    return (f"<h3>Unreadable while making this report ({data.unreadable:,})</h3>\n"
            f'<table id="unreadable"><tr><th>post</th><th>reason</th></tr>{rows}</table>{tail}\n')


def _quota(data: ReportData) -> str:
    days = data.quota[-60:]
    top = max((item["units"] for item in days), default=0) or 1
    width = 12 * max(len(days), 1)
    bars = "".join(
        f'<rect class="bar" x="{12 * i + 1}" y="{100 - 100 * item["units"] / top:.1f}" width="10" '
        f'height="{100 * item["units"] / top:.1f}"><title>{escape(item["day"])}: {item["units"]:,} units'
        f"</title></rect>" for i, item in enumerate(days))
    rows = "".join(f'<tr><td>{escape(item["day"])}</td><td class="n">{item["calls"]:,}</td>'
                   f'<td class="n">{item["units"]:,}</td></tr>' for item in reversed(days[-14:]))
    chart = (f'<svg id="quota-chart" width="{width}" height="112" viewBox="0 0 {width} 112">{bars}'
             f'<text class="axis" x="0" y="111">max {top:,} units/day</text></svg>')
    return ('<h2>API calls and quota per day</h2>\n<p class="note">Pacific days (quotas reset at '
            "midnight Pacific); every call is one <code>videos.list</code> of up to 50 ids, 1 unit, so "
            f"calls = units. Chart: the last {len(days)} days; table: the last 14.</p>\n"
            f'<div class="cols">{chart}<table id="quota">'
            f'<tr><th>day</th><th class="n">calls</th><th class="n">units</th></tr>{rows or _none(3)}'
            "</table></div>\n")


def sparkline(flat: list[int]) -> str:
    """An inline SVG polyline of [t0, v0, t1, v1, ...] (the same drawing as the page's script)."""
    times, values = flat[0::2], flat[1::2]
    if not times:
        return f'<svg class="spark" width="{SPARK_W}" height="{SPARK_H}"></svg>'
    if len(times) == 1:
        times, values = [times[0], times[0] + 1], [values[0], values[0]]
    t0, t1, v0, v1 = min(times), max(times), min(values), max(values)
    xs = [(t - t0) / (t1 - t0) if t1 > t0 else i / (len(times) - 1) for i, t in enumerate(times)]
    ys = [(v - v0) / (v1 - v0) if v1 > v0 else 0.5 for v in values]
    points = " ".join(f"{x * (SPARK_W - 4) + 2:.1f},{SPARK_H - 2 - y * (SPARK_H - 4):.1f}"
                      for x, y in zip(xs, ys, strict=True))
    return (f'<svg class="spark" width="{SPARK_W}" height="{SPARK_H}" viewBox="0 0 {SPARK_W} {SPARK_H}">'
            f'<polyline points="{points}"/></svg>')


def _none(columns: int) -> str:
    return f'<tr><td colspan="{columns}" class="note">none</td></tr>'


def _more(items: list[dict[str, Any]]) -> str:
    extra = len(items) - SHOWN
    return f'<p class="note">and {extra:,} more (in the embedded data).</p>' if extra > 0 else ""

