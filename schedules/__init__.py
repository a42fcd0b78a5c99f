"""Background work: delivering the outbox now; deadline sweeps and digests join it later."""
