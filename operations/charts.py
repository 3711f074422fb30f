"""Charts drawn on the server as inline SVG: no JavaScript, no CDN, nothing to load.

One kind is enough for the dashboard: bars per minute (or per day), stacked by series, with
a legend and a scale. The markup is built from numbers and escaped names only.
"""

from __future__ import annotations

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

PALETTE = ["#417690", "#e0a030", "#70a050", "#c05050", "#8060b0", "#40a0a0", "#a07050"]


def stacked_bars(
    series: dict[str, list[int]],
    *,
    label: str,
    start_label: str,
    end_label: str,
    width: int = 960,
    height: int = 140,
) -> SafeString:
    """Bars, one per slot, each stacked from `series` (name -> a value per slot, all the same
    length), in an SVG `width` x `height` plus its legend. `label` is the accessible name."""
    slots = max((len(values) for values in series.values()), default=0)
    totals = [sum(values[i] for values in series.values()) for i in range(slots)]
    peak = max(totals, default=0) or 1
    left, bottom, top = 36, 18, 6
    plot_w, plot_h = width - left - 4, height - bottom - top
    step = plot_w / max(slots, 1)
    parts = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 4}" y2="{top + plot_h}" '
        'stroke="#999" stroke-width="1"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" font-size="10">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="10">0</text>',
        f'<text x="{left}" y="{height - 4}" font-size="10">{escape(start_label)}</text>',
        f'<text x="{width - 4}" y="{height - 4}" text-anchor="end" font-size="10">'
        f"{escape(end_label)}</text>",
    ]
    for i in range(slots):
        y = top + plot_h
        for n, (name, values) in enumerate(series.items()):
            value = values[i]
            if not value:
                continue
            h = value / peak * plot_h
            y -= h
            parts.append(
                f'<rect x="{left + i * step + 0.5:.1f}" y="{y:.1f}" width="{max(step - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{PALETTE[n % len(PALETTE)]}">'
                f"<title>{escape(name)}: {value}</title></rect>"
            )
    legend = " ".join(
        format_html(
            '<span style="white-space:nowrap"><span style="display:inline-block;width:10px;'
            'height:10px;background:{}"></span> {} ({})</span>',
            PALETTE[n % len(PALETTE)],
            name,
            sum(values),
        )
        for n, (name, values) in enumerate(series.items())
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px">'
        f"<title>{escape(label)}</title>{''.join(parts)}</svg>"
    )
    return mark_safe(f'{svg}<div class="chart-legend">{legend}</div>')  # noqa: S308
