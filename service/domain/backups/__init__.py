"""Backups: volumes' export tars stored by restic, restored into volumes, and policies that run
them on a schedule (docs/design.md section 12). One module each:

- repositories.py: where backups go (a restic repository, local or S3), one project's each.
- runs.py: backing a volume up, as a run until restic has written its snapshot.
- restores.py: a backup back into a new volume, or over an unused one.
- policies.py: which volumes go into which repository, when, and how many backups stay.
- schedule.py: a policy's cron expression, read in its own time zone.
- scheduler.py: fires each policy's scheduled times, exactly once on the host.
- retention.py: which backups a policy keeps, by restic's `forget --keep-*` rules (pure).
- restic.py: restic itself, run as a subprocess; secrets reach it only in files.
- state.py: the state dir, where repositories, runs, restores and policies are recorded.
- jobs.py: the work a backup or a restore does after its request is answered (202).
"""
