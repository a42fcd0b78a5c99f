"""The rules every layer above uses, and what the conversations and the background work share.

The rules: the service catalog, the request lifecycle and its transitions, routing along the
ladder, reachability, deadlines on the working calendar, verdicts, areas, metrics, reports and
the ledger. Shared below `handlers/` and `schedules/`: the channel-neutral message types
(`messages`), the outbox writer (`outbox.enqueue`), the texts (`i18n`) and the words for codes
(`labels`), the clock and the charts. Imports only `storage/` below it.
"""
