"""Turns scripts/bench-kcp-tcp's JSON lines into a markdown table (each KCP
figure as a ratio of TCP's in the same run) and an SVG plot of average and
maximum RTT against loss. Standard library only."""

import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
by = {(r["loss_percent"], r["transport"]): r["result"] for r in rows}
losses = sorted({r["loss_percent"] for r in rows})
delay = rows[0]["delay_ms_each_way"] if rows else 0

lines = [
    f"KCP (Hearth, fast profile; and with two redundant copies of each segment) against kernel TCP "
    f"(TCP_NODELAY), a 100-byte message every 20 ms echoed, {delay} ms added each way, random loss each way:",
    "",
    "| loss | KCP | avg ms | TCP avg ms | avg ratio | p99 ms | TCP p99 ms | max ms | TCP max ms | max ratio | echoed / TCP's |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]
for loss in losses:
    t = by.get((loss, "tcp"))
    for name, label in [("kcp", "fast"), ("kcp-copies", "+2 copies")]:
        k = by.get((loss, name))
        if not k or not t:
            continue
        lines.append(
            f"| {loss} % | {label} | {k['avg_ms']:.1f} | {t['avg_ms']:.1f} | {k['avg_ms'] / t['avg_ms']:.2f}x | "
            f"{k['p99_ms']:.1f} | {t['p99_ms']:.1f} | {k['max_ms']:.1f} | {t['max_ms']:.1f} | "
            f"{k['max_ms'] / t['max_ms']:.2f}x | {k['echoed']}/{k['messages']} {t['echoed']}/{t['messages']} |"
        )
lines.append("")
lines.append("Goal at 5 % loss: average at most 0.5x TCP's, maximum at most 0.25x TCP's.")
open(sys.argv[2], "w").write("\n".join(lines) + "\n")

# The plot: per loss, bars for KCP and TCP average (solid) and maximum (light).
width, height, left, bottom, top = 720, 360, 60, 40, 30
peak = max([by[k]["max_ms"] for k in by] + [1.0])
plot_h = height - bottom - top
group = (width - left - 20) / max(len(losses), 1)
bar = group / 7
svg = [
    f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
    f'<text x="{left}" y="18">RTT against loss ({delay} ms each way): average (dark) and maximum (light), ms</text>',
    f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#333"/>',
    f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#333"/>',
]
for i in range(5):
    value = peak * i / 4
    y = height - bottom - plot_h * i / 4
    svg.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{value:.0f}</text>')
    svg.append(f'<line x1="{left}" y1="{y}" x2="{width - 10}" y2="{y}" stroke="#eee"/>')
colours = {
    "kcp": ("#b4461c", "#f0b49c"),
    "kcp-copies": ("#2f7d32", "#a5d6a7"),
    "tcp": ("#29335c", "#9aa4cc"),
}
for g, loss in enumerate(losses):
    x0 = left + 10 + g * group
    for j, proto in enumerate(["kcp", "kcp-copies", "tcp"]):
        r = by.get((loss, proto))
        if not r:
            continue
        x = x0 + j * 2 * bar
        for k, (key, colour) in enumerate([("max_ms", colours[proto][1]), ("avg_ms", colours[proto][0])]):
            h = plot_h * r[key] / peak
            svg.append(f'<rect x="{x + k * bar * 0.5}" y="{height - bottom - h}" width="{bar}" height="{h}" fill="{colour}"/>')
        svg.append(f'<text x="{x + bar * 0.75}" y="{height - bottom + 14}" text-anchor="middle">{proto}</text>')
    svg.append(f'<text x="{x0 + 3 * bar}" y="{height - bottom + 30}" text-anchor="middle">{loss} % loss</text>')
svg.append("</svg>")
open(sys.argv[3], "w").write("\n".join(svg) + "\n")
