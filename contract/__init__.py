"""The runner ↔ trainer contract (DESIGN §4): everything both sides must agree on, defined once.

Lives here: exit codes and the OOM text (`codes`), fault-injection variable names (`codes`),
work-dir file names (`files`), the checkpoint `Manifest` (`manifest`), the event kinds with their
one writer and one tolerant reader (`events`), `atomic_write` and `sha256_of` (`files`), and the
attempt config with its sections and the rung (`config`).

Must not import: torch, `runner`, `trainer`. Both sides import this package; it imports neither,
so the supervisor can load it without the training stack and the trainer never sees the store.
"""
