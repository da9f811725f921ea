"""The delivery pipeline: from a published event to recorded attempts.

In the order a delivery meets them:

- `fanout`: the bus subscriber that writes one delivery per matching webhook, inside the
  publisher's transaction.
- `dispatch`: hands delivery IDs to the broker after COMMIT (and again from the sweeper).
- `engine`: the per-worker-process scheduler that claims, sends and records.
- `store`: every write to a delivery's state, each one guarded by the claim it acts for.
- `transitions`: the pure state machine that decides a delivery's next state.
- `recorder`: applies the state machine to a batch of results, through the store.
- `sending`, `transport`, `signing`: build, sign and POST one request.
- `retry_policy`: when the next attempt falls due.
- `sweeper`: recovers deliveries whose worker died and dispatches what is due.
- `storable`: makes what a receiver answered safe to store.

The registry (models, services, selectors, validation, targets, secrets) sits beside this
package in `webhooks/`; the interfaces (API, admin, commands, Celery tasks) on top of both.
"""
