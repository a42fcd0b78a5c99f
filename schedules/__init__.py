"""Background work, run by the one active worker: delivering the outbox, the deadline sweep
(reminders, escalation, the verdict's steps), the morning digest, ledgers asked for with
/export, and what follows when Telegram refuses a message. Sits beside `handlers/`; uses
`domain/` and `storage/` below."""
