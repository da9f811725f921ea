"""A sparkline of hourly outcomes as inline SVG, drawn on the server: no script, no
chart library, and colours from the stylesheet (classes), so dark mode applies."""

from collections.abc import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from webhooks.console.health import HourCount

BAR_WIDTH = 3
GAP = 1
HEIGHT = 20


def outcomes_sparkline(hours: Sequence[HourCount], *, label: str) -> SafeString:
    """One bar per hour, its height the hour's attempts against the busiest hour's,
    failures stacked on top in red; an hour without attempts is a flat tick."""
    peak = max((h.total for h in hours), default=0)
    width = len(hours) * (BAR_WIDTH + GAP) - GAP
    rects = []
    for i, hour in enumerate(hours):
        x = i * (BAR_WIDTH + GAP)
        if hour.total == 0:
            rects.append(("cp-none", x, HEIGHT - 1, 1))
            continue
        tall = max(2, round(HEIGHT * hour.total / peak))
        failed = round(tall * hour.failed / hour.total)
        if hour.failed and failed == 0:
            failed = 1  # one failure among many still shows
        if failed:
            rects.append(("cp-fail", x, HEIGHT - tall, failed))
        if tall - failed:
            rects.append(("cp-ok", x, HEIGHT - tall + failed, tall - failed))
    bars = format_html_join(
        "",
        '<rect class="{}" x="{}" y="{}" width="' + str(BAR_WIDTH) + '" height="{}"></rect>',
        rects,
    )
    return format_html(
        '<svg class="cp-spark" role="img" width="{}" height="{}" viewBox="0 0 {} {}">'
        "<title>{}</title>{}</svg>",
        width,
        HEIGHT,
        width,
        HEIGHT,
        label,
        bars,
    )
