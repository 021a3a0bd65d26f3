"""The scheduler: each backup policy's scheduled times, each fired exactly once on this host.

Every worker of every dockvol process runs this loop (a tick every `interval` seconds), and they
all share the state dir. A scheduled time is fired by whoever first *claims* it: an empty file
`backup-policy-fires/POLICY/EPOCH`, created with O_CREAT|O_EXCL, which the kernel lets exactly one
creator make, whatever the threads, workers or processes, and which outlives any of them (unlike
an flock, it needs no holder; unlike the engine's lock containers, a claim costs no engine call
and stays as the record that the time was fired). The claimer backs up each of the policy's
volumes for that time; nobody else touches it, unless the claimer dies before its runs have
started: a claim says `fired` once they have, and a claim without it whose process is gone is
taken over, by exactly one taker (another O_EXCL file, named after the dead claimer), within the
same deadline. Runs that had started when their process died are failed (`died`) and stay so.

A time is due at its scheduled time plus its jitter (0..jitter_seconds, the same in every process:
a hash of policy and time). A tick looks at the times since the policy's cursor (the newest time
every earlier one of which is settled, kept in the state dir) and:
- runs the newest due time, if it is at most `starting_deadline_seconds` old (so after a restart
  a missed time runs once, and several missed times run once between them);
- records as `missed` (last_run) a due time older than the deadline, or older than 60 s with a
  newer one due: a tick came too late for it;
- leaves a time that is neither for a later tick (or another process).
A paused policy fires nothing, and times from before its last schedule change are not its."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ... import times
from ..helpers import gone, local_pid, owner
from .policies import Policies, Policy
from .state import StateDir

log = logging.getLogger(__name__)
FIRES = "backup-policy-fires"
CURSORS = "backup-policy-cursors"
PROMPT = 60  # seconds: a scheduled time fires within this of its due time
LOOKBACK = 3600  # seconds beyond a policy's deadline that a tick still looks back over


def jitter(policy: Policy, at: datetime) -> float:
    """Seconds after `at` that its run is due: spread, but the same in every process."""
    if policy.jitter_seconds <= 0:
        return 0.0
    digest = hashlib.sha256(f"{policy.name}/{int(at.timestamp())}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (policy.jitter_seconds * 1000 + 1) / 1000


class Scheduler:
    def __init__(
        self,
        policies: Policies,
        state: StateDir,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        fire: Callable[[Policy, str], object] | None = None,
        interval: float = 1.0,
    ) -> None:
        self._policies = policies
        self._state = state
        self._clock = clock
        self._fire = fire or (lambda policy, at: policies.run(policy, scheduled_at=at))
        self.interval = interval

    def tick(self) -> None:
        now = self._clock()
        for policy in self._policies.list():
            try:
                self._tick(policy, now)
            except Exception:
                log.exception("the scheduler's tick of backup policy %s failed", policy.name)

    def _tick(self, policy: Policy, now: datetime) -> None:
        if policy.paused:
            return
        deadline = policy.starting_deadline_seconds
        since = max(policy.active_since(), now - timedelta(seconds=max(deadline, PROMPT) + LOOKBACK))
        cursor = self._state.read(CURSORS, policy.name)
        if cursor is not None and cursor.get("version") == policy.updated_at:
            since = max(since, datetime.fromtimestamp(cursor["through"], UTC))
        due = [t for t in policy.schedule.between(since, now) if now >= t + timedelta(seconds=jitter(policy, t))]
        settled = since
        for t in due:
            age = (now - t).total_seconds()
            if t == due[-1] and age <= deadline:
                if self._claim(policy, t) or self._take_over(policy, t):
                    self._run(policy, t)
            elif age > deadline or age > PROMPT:
                if self._claim(policy, t):
                    self._policies.record_run(policy.name, _text(t), "missed")
            else:
                break  # neither yet: a later tick settles it, and everything after it
            settled = t
        if settled > since:
            self._state.write(CURSORS, policy.name, {"through": settled.timestamp(), "version": policy.updated_at})
        self._purge(policy, now)

    def _claim(self, policy: Policy, at: datetime) -> bool:
        """Whether this process is the one to fire `policy` at `at` (exactly one ever is, but for a
        claimer that died before its runs started: `_take_over`)."""
        return self._create(self._claim_path(policy, at))

    def _take_over(self, policy: Policy, at: datetime) -> bool:
        """Whether this process takes over the claim of a claimer that died before its runs started."""
        path = self._claim_path(policy, at)
        try:
            with open(path) as f:
                claimer, _, fired = f.read().partition("\n")
        except FileNotFoundError:
            return False
        pid = local_pid(claimer)
        if fired or not claimer or pid is None or not gone(claimer):
            return False
        if not self._create(f"{path}.after-{pid}"):
            return False  # another process took it over
        log.warning(
            "backup policy %s: %s died before its runs for %s started; firing them", policy.name, claimer, _text(at)
        )
        self._state.write_bytes(path, owner().encode())
        return True

    def _claim_path(self, policy: Policy, at: datetime) -> str:
        folder = os.path.join(self._state.folder(FIRES), policy.name)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        return os.path.join(folder, str(int(at.timestamp())))

    def _create(self, path: str) -> bool:
        """Create `path` holding this process's owner label, if nobody made it before (O_EXCL)."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(owner())
        return True

    def _run(self, policy: Policy, at: datetime) -> None:
        log.info("backup policy %s fires for %s", policy.name, _text(at))
        try:
            self._fire(policy, _text(at))
        except Exception as exc:
            log.warning("backup policy %s could not run for %s: %s", policy.name, _text(at), exc)
        # Its runs have started (or failed to): nobody takes this claim over any more.
        self._state.write_bytes(self._claim_path(policy, at), f"{owner()}\nfired".encode())

    def _purge(self, policy: Policy, now: datetime) -> None:
        """Claims of times no tick looks at any more go."""
        folder = os.path.join(self._state.root, FIRES, policy.name)
        oldest = (now - timedelta(seconds=max(policy.starting_deadline_seconds, PROMPT) + 2 * LOOKBACK)).timestamp()
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(folder):
                if name.split(".")[0].isdigit() and int(name.split(".")[0]) < oldest:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(folder, name))

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            self.tick()

    def start_in_background(self) -> threading.Event:
        stop = threading.Event()
        threading.Thread(target=self.run_forever, args=(stop,), name="dockvol-scheduler", daemon=True).start()
        return stop


def _text(at: datetime) -> str:
    return times.text(int(at.timestamp()) * 1_000_000_000)
