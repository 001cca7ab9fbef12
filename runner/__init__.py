"""The runner (DESIGN §1, §2): the supervisor side, one process per session, and the `runner` CLI.

Lives here: the job spec (`spec`), pure decisions (`layout`, `ladder`, `policy`, `checkpoints`,
`lease`'s decisions, `deadline`, `status`'s derived phase), the store (`store/`), and the parts
that carry decisions out (`lease.LeaseHolder`, `sync`, `data_cache`, `inputs`, `pull`, `supervisor`,
`cli`; `trainer_check` says whether this machine can launch the trainer).

Must not import: `trainer` or torch. The runner meets the trainer only through `contract` (the
attempt config, work-dir files, exit codes) and a subprocess, so `runner status` works on a
laptop without the training stack (tests/integration/test_seam.py and tests/unit/test_torch_free.py
check this).
"""
