"""Why a delivery is in its state, in one plain sentence for the operator.

Pure: it reads the delivery, its last attempt and the retry schedule it was given, and
never the clock or the database, so a table of tests pins every sentence
(tests/webhooks/console/test_reasons.py). The numbers it quotes are the ones the state
machine used (`webhooks.delivery.transitions`): `attempts` counts every try, manual ones included,
and the wait before attempt n + 1 is the schedule's step n unless a Retry-After overrode it.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from webhooks.delivery.retry_policy import RETRY_AFTER_STATUSES, parse_retry_after
from webhooks.models import Attempt, Delivery

ERROR_KINDS = {
    "timeout": "the request timed out",
    "connection": "the connection failed",
    "dns": "the host name did not resolve",
    "tls": "the TLS handshake failed",
    "blocked_target": "the target address is blocked by policy",
    "secret_unavailable": "the signing secret could not be decrypted",
    "record_failed": "the endpoint's answer could not be stored",
}


@dataclass(frozen=True)
class DeliveryFacts:
    status: str
    attempts: int
    next_attempt_at: datetime | None
    next_trigger: str
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str


@dataclass(frozen=True)
class AttemptFacts:
    number: int
    trigger: str
    started_at: datetime
    duration_ms: int
    status_code: int | None
    headers: Mapping[str, str]
    error_kind: str
    error_message: str


def delivery_reason(
    *,
    delivery: DeliveryFacts,
    last_attempt: AttemptFacts | None,
    schedule: Sequence[float],
    retry_after_cap: float,
    now: datetime,
) -> str:
    """One sentence: what happens next to the delivery, and because of what."""
    total = len(schedule)
    if delivery.status == "succeeded":
        return _succeeded(delivery, last_attempt, total, now)
    if delivery.status == "sending":
        return f"Attempt {delivery.attempts} of {total} is being sent now."
    if delivery.status == "pending":
        return _pending(delivery, total, now)
    if delivery.status == "failed":
        return _failed(delivery, last_attempt, schedule, retry_after_cap, now)
    if delivery.status == "exhausted":
        return _exhausted(delivery, last_attempt, total, retry_after_cap, now)
    if delivery.status == "cancelled":
        why = delivery.last_error.strip().removeprefix("Cancelled: ")
        return f"Cancelled: {why}" if why else "Cancelled; it will not be sent again."
    return f"Status {delivery.status}."


def _succeeded(
    delivery: DeliveryFacts, last: AttemptFacts | None, total: int, now: datetime
) -> str:
    when = _at(delivery.delivered_at, now) if delivery.delivered_at else ""
    code = last.status_code if last else delivery.last_status_code
    sentence = f"Delivered{when} on attempt {delivery.attempts}"
    sentence += f" of {total}" if delivery.attempts <= total else ""
    if delivery.attempts > 1:
        failed = delivery.attempts - 1
        sentence += f", after {failed} failed attempt{'s' if failed > 1 else ''}"
    return f"{sentence}: the endpoint answered {code}." if code else f"{sentence}."


def _pending(delivery: DeliveryFacts, total: int, now: datetime) -> str:
    number = delivery.attempts + 1
    due = _at(delivery.next_attempt_at, now) if delivery.next_attempt_at else " soon"
    if delivery.next_trigger == "manual":
        sentence = f"Attempt {number} is a manual retry, due{due}"
        if number > total:
            spent = f"the schedule's {total} attempts are spent"
            return f"{sentence}; {spent}, so if it fails the delivery gives up."
        return f"{sentence}; if it fails, the schedule carries on from there."
    if delivery.next_trigger == "recover":
        return f"Attempt {number} is a recovery re-send, due{due}."
    if delivery.attempts == 0:
        return f"Waiting for its first attempt (1 of {total}), due{due}."
    return f"Attempt {number} of {total} is due{due}."


def _failed(
    delivery: DeliveryFacts,
    last: AttemptFacts | None,
    schedule: Sequence[float],
    cap: float,
    now: datetime,
) -> str:
    number = delivery.attempts + 1
    due = _at(delivery.next_attempt_at, now) if delivery.next_attempt_at else " soon"
    cause = _cause(last, cap) if last else _stored_cause(delivery)
    head = f"Attempt {number} of {len(schedule)} scheduled{due}"
    if last is not None and last.trigger == "manual":
        step = _step(schedule, delivery.attempts, last)
        return (
            f"{head}, the schedule's next step{step}: the manual retry "
            f"(attempt {last.number}){_at(last.started_at, now)} failed because {cause}."
        )
    return f"{head} because {cause}."


def _exhausted(
    delivery: DeliveryFacts, last: AttemptFacts | None, total: int, cap: float, now: datetime
) -> str:
    cause = _cause(last, cap) if last else _stored_cause(delivery)
    if last is not None and last.trigger == "manual":
        return (
            f"Gave up: the manual retry (attempt {last.number}){_at(last.started_at, now)} "
            f"failed because {cause}, and the schedule's {total} attempts are spent."
        )
    when = _at(last.started_at, now) if last else ""
    return (
        f"Gave up after {delivery.attempts} attempts (the schedule allows {total}): "
        f"the last{when} failed because {cause}."
    )


def _step(schedule: Sequence[float], attempts: int, last: AttemptFacts) -> str:
    """Why the wait after a failed manual retry is as long as it is: the schedule's step
    for the number of attempts made, not a fresh start."""
    if last.status_code in RETRY_AFTER_STATUSES and _retry_after(last) is not None:
        return ""  # the cause names the Retry-After, which set the wait
    if attempts < len(schedule):
        return f" ({duration_text(schedule[attempts])} after attempt {attempts})"
    return ""


def _cause(attempt: AttemptFacts, cap: float) -> str:
    if attempt.status_code is not None:
        text = f"the endpoint answered {attempt.status_code}"
        if attempt.status_code == 410:
            return f"{text} Gone"
        seconds = _retry_after(attempt)
        if attempt.status_code in RETRY_AFTER_STATUSES and seconds is not None:
            text += f" with Retry-After {_header(attempt.headers, 'retry-after')}"
            if seconds > cap:
                text += f" (capped at {duration_text(cap)})"
        return text
    label = ERROR_KINDS.get(attempt.error_kind, "the attempt failed")
    message = attempt.error_message.strip()
    if attempt.error_kind == "timeout":
        label += f" after {attempt.duration_ms / 1000:.1f} s"
    return f"{label} ({message})" if message else label


def _stored_cause(delivery: DeliveryFacts) -> str:
    """From the delivery row alone, when its attempts were purged."""
    if delivery.last_status_code is not None:
        return f"the endpoint answered {delivery.last_status_code}"
    return delivery.last_error.strip() or "the last attempt failed"


def _retry_after(attempt: AttemptFacts) -> float | None:
    return parse_retry_after(_header(attempt.headers, "retry-after"), now=attempt.started_at)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return str(value)
    return None


def _at(moment: datetime | None, now: datetime) -> str:
    """` at 07:28:10 UTC`, with the date when it is not today's."""
    if moment is None:
        return ""
    moment, now = moment.astimezone(UTC), now.astimezone(UTC)
    if moment.date() == now.date():
        return f" at {moment:%H:%M:%S} UTC"
    return f" at {moment:%Y-%m-%d %H:%M:%S} UTC"


def duration_text(seconds: float) -> str:
    """5 s, 5 min, 2 h, 1 d 4 h: the schedule's steps as people say them."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    if whole < 86400:
        hours, rest = divmod(whole, 3600)
        return f"{hours} h" + (f" {rest // 60} min" if rest >= 60 else "")
    days, rest = divmod(whole, 86400)
    return f"{days} d" + (f" {rest // 3600} h" if rest >= 3600 else "")


def delivery_facts(delivery: Delivery) -> DeliveryFacts:
    return DeliveryFacts(
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        next_trigger=delivery.next_trigger,
        delivered_at=delivery.delivered_at,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
    )


def attempt_facts(attempt: Attempt) -> AttemptFacts:
    return AttemptFacts(
        number=attempt.attempt_number,
        trigger=attempt.trigger,
        started_at=attempt.started_at,
        duration_ms=attempt.duration_ms,
        status_code=attempt.response_status,
        headers=attempt.response_headers or {},
        error_kind=attempt.error_kind,
        error_message=attempt.error_message,
    )
