"""The long-running side: the loop, watching, settling, wake-ups, sd_notify, signals and
the state holder. The only threads live here; imports flow into this package, never out
of it (checks, sources and sinks know nothing of the daemon)."""
