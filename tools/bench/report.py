"""Turns the outputs of scripts/bench into one report.

Reads, from the results directory given as the only argument:
- raw/*.txt: each benchmark's output; the lines `FIGURE {json}` and
  `POINT {json}` (printed through the hearth-figures crate) are collected;
- bots.json: the `hearth bot --json --watch-pid` report of the bot run;
- kcp-vs-tcp.jsonl: scripts/bench-kcp-tcp's rows, when it ran (root only).

Writes summary.md (the machine, then every figure with its peer from the same
run and the ratio) and one SVG line plot per plot, and copies the summary
into bench/README.md between its `results:begin` and `results:end` markers.
Standard library only.
"""

import json
import math
import os
import platform
import subprocess
import sys
from collections import OrderedDict
from datetime import datetime, timezone

OUT = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "README.md")

figures = []  # dicts: bench, name, unit, value, better, [peer, peer_value, ratio]
points = OrderedDict()  # plot -> {"x_label", "y_label", "series": OrderedDict(name -> [(x, y)])}


def add_point(plot, x_label, y_label, series, x, y):
    entry = points.setdefault(plot, {"x_label": x_label, "y_label": y_label, "series": OrderedDict()})
    entry["series"].setdefault(series, []).append((x, y))


def add_figure(bench, name, unit, value, better, peer=None, peer_value=None):
    figure = {"bench": bench, "name": name, "unit": unit, "value": value, "better": better}
    if peer is not None and peer_value:
        figure.update(peer=peer, peer_value=peer_value, ratio=value / peer_value)
    figures.append(figure)


# 1. Every benchmark's own lines.
raw = os.path.join(OUT, "raw")
for name in sorted(os.listdir(raw)) if os.path.isdir(raw) else []:
    if not name.endswith(".txt"):
        continue
    for line in open(os.path.join(raw, name), errors="replace"):
        line = line.strip()
        if line.startswith("FIGURE {"):
            figures.append(json.loads(line[len("FIGURE "):]))
        elif line.startswith("POINT {"):
            p = json.loads(line[len("POINT "):])
            add_point(p["plot"], p["x_label"], p["y_label"], p["series"], p["x"], p["y"])

# 2. The bot run against a real server.
bots_path = os.path.join(OUT, "bots.json")
if os.path.exists(bots_path):
    bots = json.load(open(bots_path))
    started = bots.get("started", 0)
    add_figure("bots", "bots connected", "bots", bots["connected"], "higher", "bots started", started)
    for what in ["login", "rtt"]:
        h = bots.get(what) or {}
        for q in ["p50", "p99"]:
            if f"{q}_ms" in h:
                add_figure("bots", f"{what} {q}", "ms", h[f"{q}_ms"], "lower")
        for q, x in [("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)]:
            if f"{q}_ms" in h:
                add_point("bots-latency", "percentile (100 = max)", "milliseconds", what, x, h[f"{q}_ms"])
    add_figure("bots", "messages per second to the server", "msg/s", bots["messages_out_per_s"], "higher")
    add_figure("bots", "messages per second from the server", "msg/s", bots["messages_in_per_s"], "higher")
    server = bots.get("server") or {}
    if server.get("cpu_cores_after_ramp") is not None:
        add_figure("bots", "server CPU after the ramp", "cores", server["cpu_cores_after_ramp"], "lower")
    if server.get("rss_max_bytes"):
        add_figure("bots", "server resident memory (max)", "MB", server["rss_max_bytes"] / 1e6, "lower")
    if server.get("rss_per_connected_bot_bytes"):
        add_figure("bots", "server memory per connected bot", "KB", server["rss_per_connected_bot_bytes"] / 1e3, "lower")

# 3. KCP against kernel TCP, when it ran.
kcp_path = os.path.join(OUT, "kcp-vs-tcp.jsonl")
if os.path.exists(kcp_path):
    rows = [json.loads(line) for line in open(kcp_path) if line.strip()]
    by = {(r["loss_percent"], r["transport"]): r["result"] for r in rows}
    for loss in sorted({r["loss_percent"] for r in rows}):
        k, c, t = by.get((loss, "kcp")), by.get((loss, "kcp-copies")), by.get((loss, "tcp"))
        if not k or not t:
            continue
        for name, r in [("KCP", k), ("KCP with 2 copies", c)]:
            if not r:
                continue
            for key, label in [("avg_ms", "average"), ("p99_ms", "p99"), ("max_ms", "maximum")]:
                add_figure("kcp_vs_tcp", f"{name} RTT {label} at {loss} % loss", "ms", r[key], "lower", "kernel TCP", t[key])
        for proto, r in [("KCP", k), ("KCP with 2 copies", c), ("TCP", t)]:
            if not r:
                continue
            add_point("kcp-vs-tcp-average", "loss (%)", "average RTT (ms)", proto, loss, r["avg_ms"])
            add_point("kcp-vs-tcp-max", "loss (%)", "maximum RTT (ms)", proto, loss, r["max_ms"])


def fmt(value):
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass

    def run(*command):
        try:
            return subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return ""

    return (
        f"{os.cpu_count()} CPUs ({cpu}){memory}, Linux {platform.release()}, {run('rustc', '--version')}; "
        f"commit {run('git', 'rev-parse', '--short', 'HEAD') or 'unknown'}; "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"
    )


def line_plot(path, title, x_label, y_label, series):
    """A plain SVG line chart; x on a log scale when it spans 20x or more."""
    width, height, left, right, top, bottom = 720, 400, 80, 190, 36, 50
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts if y is not None]
    if not xs or not ys:
        return
    log_x = min(xs) > 0 and max(xs) / min(xs) >= 20
    fx = (lambda x: math.log10(x)) if log_x else (lambda x: x)
    x0, x1 = fx(min(xs)), fx(max(xs))
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = max(ys) * 1.1 or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x):
        return left + plot_w * (fx(x) - x0) / (x1 - x0)

    def py(y):
        return top + plot_h * (1 - y / y1)

    colours = ["#b4461c", "#29335c", "#3c8d40", "#8e44ad", "#c9a227", "#16a0a0", "#555555", "#d35400"]
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14">{escape(title)}</text>',
    ]
    for i in range(6):
        y = y1 * i / 5
        svg.append(f'<line x1="{left}" y1="{py(y):.1f}" x2="{left + plot_w}" y2="{py(y):.1f}" stroke="#eee"/>')
        svg.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{fmt(y)}</text>')
    for x in sorted(set(xs)):
        svg.append(f'<text x="{px(x):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{fmt(x)}</text>')
    svg += [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>',
        f'<text x="{left + plot_w / 2}" y="{height - 10}" text-anchor="middle">{escape(x_label)}{" (log scale)" if log_x else ""}</text>',
        f'<text x="16" y="{top + plot_h / 2}" text-anchor="middle" transform="rotate(-90 16 {top + plot_h / 2})">{escape(y_label)}</text>',
    ]
    for i, (name, pts) in enumerate(series.items()):
        colour = colours[i % len(colours)]
        pts = sorted((x, y) for x, y in pts if y is not None)
        path_d = " ".join(f"{'M' if j == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for j, (x, y) in enumerate(pts))
        svg.append(f'<path d="{path_d}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in pts:
            svg.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
        ly = top + 14 + 18 * i
        svg.append(f'<rect x="{left + plot_w + 14}" y="{ly - 9}" width="12" height="12" fill="{colour}"/>')
        svg.append(f'<text x="{left + plot_w + 32}" y="{ly + 1}">{escape(name)}</text>')
    svg.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(svg) + "\n")


def escape(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


TITLES = {
    "echo-throughput": "Echo throughput against load (64-byte messages, one in flight per connection)",
    "echo-p99": "Echo p99 round trip against load",
    "bots-latency": "Bots against hearth serve: login time and RTT distribution",
    "idle-sessions-cpu": "Idle sessions held by hearth serve: server CPU against a bare-socket floor",
    "kcp-vs-tcp-average": "KCP against kernel TCP: average RTT against loss",
    "kcp-vs-tcp-max": "KCP against kernel TCP: maximum RTT against loss",
}

lines = [f"Machine: {machine()}.", ""]
lines += [
    "Each figure is Hearth's; where a peer was measured in the same run, the ratio is Hearth / peer "
    "(the last column says which way is better).",
    "",
    "| bench | figure | Hearth | peer | peer's figure | ratio |",
    "|---|---|---|---|---|---|",
]
for f in figures:
    ratio = f.get("ratio")
    better = "higher is better" if f.get("better") == "higher" else "lower is better"
    lines.append(
        f"| {f['bench']} | {f['name']} | {fmt(f['value'])} {f['unit']} | {f.get('peer', '')} | "
        + (f"{fmt(f.get('peer_value'))} {f['unit']}" if "peer" in f else "")
        + f" | {f'{ratio:.2f}x ({better})' if ratio is not None else ''} |"
    )
if points:
    lines.append("")
for plot, entry in points.items():
    name = f"{plot}.svg"
    line_plot(os.path.join(OUT, name), TITLES.get(plot, plot), entry["x_label"], entry["y_label"], entry["series"])
    lines.append(f"![{TITLES.get(plot, plot)}](results/{name})")
summary = "\n".join(lines) + "\n"
with open(os.path.join(OUT, "summary.md"), "w") as f:
    f.write(summary)
print(summary)

# Keep bench/README.md's results section in step (only for the default directory).
if os.path.abspath(OUT) == os.path.abspath(os.path.join(os.path.dirname(README), "results")) and os.path.exists(README):
    text = open(README).read()
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        with open(README, "w") as f:
            f.write(head + begin + "\n" + summary + end + tail)
