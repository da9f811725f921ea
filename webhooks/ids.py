"""Prefixed, time-sortable identifiers (`wh_…`, `dlv_…`, `atm_…`)."""

from ulid import ULID


def new_webhook_id() -> str:
    return f"wh_{ULID()}"


def new_delivery_id() -> str:
    return f"dlv_{ULID()}"


def new_attempt_id() -> str:
    return f"atm_{ULID()}"
