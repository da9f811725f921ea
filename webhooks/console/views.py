"""The dashboard page: the selectors' panels for one window, charts drawn by Chart.js from
data in the page (json_script), so it needs no API of its own."""

from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from webhooks.console.selectors import (
    EndpointHealth,
    SeriesPoint,
    Totals,
    Window,
    backlog,
    failing_endpoints,
    outcomes_over_time,
    tenant_totals,
    window_totals,
)

# Who may open it: any staff user who may see deliveries (view-only staff included). The
# page only reads; it offers no action and shows no secret.
PERMISSION = "webhooks.view_delivery"
NO_VALUE = "\N{EN DASH}"  # what a figure with nothing to compute from shows
WINDOW_LABELS = {Window.HOUR: "Last hour", Window.DAY: "Last day", Window.WEEK: "Last week"}


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    try:
        window = Window(request.GET.get("window", Window.HOUR.value))
    except ValueError:
        choices = ", ".join(w.value for w in Window)
        return HttpResponseBadRequest(f"window: must be one of {choices}.")
    now = timezone.now()
    points = outcomes_over_time(window=window, now=now)
    failing = failing_endpoints(window=window, now=now)
    due = backlog(now=now)
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "window": window,
        "window_label": WINDOW_LABELS[window],
        "windows": [(w.value, WINDOW_LABELS[w]) for w in Window],
        "summary": figures(window_totals(points)),
        "backlog": due,
        "oldest_due_age": age(due.oldest_age),
        "failing": failing,
        "endpoints": [
            (
                row,
                {**figures(row.totals), "state": endpoint_state(row, now=now)},
                reverse("admin:webhooks_webhook_change", args=[row.webhook_id]),
            )
            for row in failing.rows
        ],
        "tenants": [
            (
                row,
                figures(row.totals),
                reverse("admin:tenants_tenant_change", args=[row.tenant_id]),
            )
            for row in tenant_totals(window=window, now=now)
        ],
        "chart_data": chart_data(points, window=window),
        "now": now,
    }
    return TemplateResponse(request, "admin/webhooks/dashboard.html", context)


def chart_data(points: list[SeriesPoint], *, window: Window) -> dict[str, Any]:
    """What dashboard.js draws: per-minute rates of each outcome, the success rate (%) and
    latency percentiles (ms) per bucket; null where a bucket had no attempts."""
    per_minute = window.span / 60

    def rate(count: int) -> float:
        return round(count / per_minute, 2)

    def rounded(value: float | None, digits: int = 1) -> float | None:
        return None if value is None else round(value, digits)

    return {
        "window": window.value,
        "bucket_minutes": per_minute,
        "labels": [_label(p.bucket, window) for p in points],
        "succeeded": [rate(p.totals.succeeded) for p in points],
        "retrying": [rate(p.totals.retrying) for p in points],
        "exhausted": [rate(p.totals.exhausted) for p in points],
        "success_rate": [
            rounded(None if p.totals.success_rate is None else 100 * p.totals.success_rate, 2)
            for p in points
        ],
        "p50": [rounded(p.totals.percentile(0.5)) for p in points],
        "p95": [rounded(p.totals.percentile(0.95)) for p in points],
    }


def figures(totals: Totals) -> dict[str, str | int]:
    """A row's numbers as the page shows them."""
    rate, p50, p95 = totals.success_rate, totals.percentile(0.5), totals.percentile(0.95)
    return {
        "attempts": totals.attempts,
        "succeeded": totals.succeeded,
        "failed": totals.failed,
        "retrying": totals.retrying,
        "exhausted": totals.exhausted,
        "success_rate": NO_VALUE if rate is None else f"{100 * rate:.1f} %",
        "p50": NO_VALUE if p50 is None else f"{p50:.0f} ms",
        "p95": NO_VALUE if p95 is None else f"{p95:.0f} ms",
    }


def endpoint_state(row: EndpointHealth, *, now: datetime) -> str:
    if not row.active:
        return "disabled"
    if row.failing_since:
        return f"failing for {age(now - row.failing_since)}"
    return "active"


def _label(moment: datetime, window: Window) -> str:
    local = timezone.localtime(moment)
    if window is Window.WEEK:
        return local.strftime("%a %H:%M")
    return local.strftime("%H:%M")


def age(delta: timedelta | None) -> str:
    """A short duration: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    if delta is None:
        return NO_VALUE
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
