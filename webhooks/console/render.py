"""HTML fragments of the operator console, escaped by `format_html`; their look is in
webhooks/static/webhooks/console.css, which uses the admin's colour variables."""

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from events.patterns import is_pattern
from webhooks.console.health import Health, LastAttempt, WebhookActivity
from webhooks.console.reasons import duration_text as _seconds_text
from webhooks.console.sparkline import outcomes_sparkline
from webhooks.models import Attempt, Webhook

STATUS_TONES = {
    "pending": "quiet",
    "sending": "info",
    "succeeded": "ok",
    "failed": "warn",
    "exhausted": "bad",
    "cancelled": "quiet",
}


def badge(text: str, tone: str, title: str = "") -> SafeString:
    return format_html('<span class="cp-badge cp-{}" title="{}">{}</span>', tone, title, text)


def status_badge(status: str) -> SafeString:
    return badge(status, STATUS_TONES.get(status, "quiet"))


def short_id(pk: str, url: str) -> SafeString:
    """`dlv_…M2V2NS`, linked, the whole ID in its title: a list row needs only enough of
    an ID to tell rows apart (the end of a ULID is its random part), and the full ones
    pushed the status and time columns off a 1366-px screen."""
    prefix, _, rest = pk.partition("_")
    shown = f"{prefix}_…{rest[-6:]}" if rest and len(rest) > 8 else pk
    return format_html('<a class="cp-id" href="{}" title="{}">{}</a>', url, pk, shown)


def time_cell(moment: datetime | None) -> SafeString:
    """A time to the second on two short lines, for list columns."""
    if moment is None:
        return format_html("{}", "-")
    moment = moment.astimezone(UTC)
    return format_html(
        '<span class="cp-when">{}<br>{}</span>', f"{moment:%Y-%m-%d}", f"{moment:%H:%M:%S}"
    )


def time_text(moment: datetime | None) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}" if moment else "-"


def duration_text(value: timedelta) -> str:
    return _seconds_text(value.total_seconds())


def health_badge(webhook: Webhook, health: Health) -> SafeString:
    if health == Health.DISABLED:
        return badge(
            "disabled",
            "bad",
            f"since {time_text(webhook.disabled_at)} UTC: {webhook.disabled_reason}",
        )
    if health == Health.FAILING:
        assert webhook.failing_since is not None
        return format_html(
            '{}<span class="cp-since">since <span class="cp-when">{}</span></span>',
            badge("failing", "warn", "Every attempt has failed since then."),
            time_text(webhook.failing_since),
        )
    return badge("healthy", "ok")


def event_types_text(types: Iterable[str]) -> SafeString:
    """The subscription as people read it: "all events", or each type, patterns in code."""
    terms = list(types)
    if not terms or "*" in terms:
        return format_html('<span class="cp-all">{}</span>', "all events")
    return format_html_join(
        ", ",
        "{}",
        ((format_html("<code>{}</code>", t) if is_pattern(t) else t,) for t in terms),
    )


def success_rate(activity: WebhookActivity) -> SafeString:
    rate = activity.success_rate
    label = f"24 h: {activity.ok} ok, {activity.total - activity.ok} failed"
    spark = outcomes_sparkline(activity.hours, label=label)
    if rate is None:
        return format_html('<span class="cp-rate cp-quiet">{}</span>{}', "no attempts", spark)
    tone = "ok" if rate >= 0.99 else "warn" if rate >= 0.9 else "bad"
    return format_html(
        '<span class="cp-rate cp-text-{}" title="{}">{}</span>{}',
        tone,
        label,
        f"{rate:.1%}" if rate < 1 else "100%",
        spark,
    )


def last_attempt(last: LastAttempt | None) -> SafeString:
    if last is None:
        return format_html('<span class="cp-quiet cp-last">{}</span>', "no attempt in 24 h")
    outcome = str(last.status_code) if last.status_code is not None else last.error_kind
    if not outcome:  # counted in the rollups, but not found in the attempt log
        return format_html(
            '<span class="cp-last">last <span class="cp-when">{}</span></span>',
            time_text(last.at),
        )
    return format_html(
        '<span class="cp-last">last {}<br><span class="cp-when">{}</span></span>',
        badge(outcome or "?", "ok" if last.ok else "bad"),
        time_text(last.at),
    )


def pretty_json(value: object) -> SafeString:
    """Indented, in the order given (a request body reads as it was sent)."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return format_html('<pre class="cp-json">{}</pre>', text)


def headers_table(headers: Mapping[str, object]) -> SafeString:
    if not headers:
        return format_html('<span class="cp-quiet">{}</span>', "none")
    names = sorted(headers, key=str.lower)
    rows = format_html_join(
        "", "<tr><th>{}</th><td>{}</td></tr>", ((name, headers[name]) for name in names)
    )
    return format_html('<table class="cp-headers">{}</table>', rows)


def attempt_block(attempt: Attempt, *, body_limit: int) -> SafeString:
    """One attempt: a summary line, then its error, headers and (capped) body."""
    if attempt.response_status is not None:
        outcome = badge(str(attempt.response_status), "ok" if attempt.succeeded else "bad")
    else:
        outcome = badge(attempt.error_kind or "no answer", "bad")
    kind = attempt.get_error_kind_display() if attempt.error_kind else ""
    error = (
        format_html('<p class="cp-error"><b>{}</b>: {}</p>', kind, attempt.error_message)
        if kind or attempt.error_message
        else ""
    )
    received = attempt.response_body_bytes
    cap = ""
    if received is not None and received >= body_limit:
        cap = f" (the first {body_limit} bytes; the rest was not read)"
    body = (
        format_html(
            '<p class="cp-sub">Response body, {} bytes{}</p><pre class="cp-body">{}</pre>',
            received if received is not None else len(attempt.response_body),
            cap,
            attempt.response_body,
        )
        if attempt.response_body
        else format_html('<p class="cp-sub">{}</p>', "No response body.")
    )
    return format_html(
        '<div class="cp-attempt" id="attempt-{}">'
        '<p class="cp-attempt-head"><b>#{}</b> {} <span class="cp-when">{} UTC</span> '
        '<span class="cp-quiet">{} · {} ms</span></p>{}'
        '<div class="cp-columns"><div><p class="cp-sub">Request headers</p>{}</div>'
        '<div><p class="cp-sub">Response headers</p>{}</div></div>{}</div>',
        attempt.attempt_number,
        attempt.attempt_number,
        outcome,
        time_text(attempt.started_at),
        attempt.get_trigger_display().lower(),
        attempt.duration_ms,
        error,
        headers_table(attempt.request_headers or {}),
        headers_table(attempt.response_headers or {}),
        body,
    )
