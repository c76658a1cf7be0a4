"""Follows one guest's serial console and decides each scenario's outcome.

The guest's stage-2 init prints marker lines carrying a per-boot token (so that
nothing a scenario prints can be mistaken for a marker):

    HUSK-LAB:<token>:READY arch=<uname -m> kernel=<uname -r>
    HUSK-LAB:<token>:BEGIN <scenario>
    HUSK-LAB:<token>:END <scenario> rc=<exit code>
    HUSK-LAB:<token>:DONE

This module is pure logic: time comes in as a parameter, so tests feed it lines
and clocks without booting anything.
"""

import re
from dataclasses import dataclass, field

SKIP_RC = 77  # a scenario that cannot run here exits 77 after printing "SKIP: why"
PANIC = re.compile(r"Kernel panic - not syncing.*")


@dataclass
class Outcome:
    scenario: str
    status: str  # "pass", "fail" or "skip"
    reason: str
    seconds: float


@dataclass
class Session:
    token: str
    scenarios: list
    timeouts: dict
    boot_timeout: float
    started: float
    outcomes: list = field(default_factory=list)
    kernel: str | None = None
    guest_arch: str | None = None
    finished: bool = False
    broken: str | None = None  # why the guest is gone before DONE, if it is
    _current: str | None = None
    _begun_at: float = 0.0
    _deadline: float = 0.0
    _skip_reason: str = ""
    _panic: str | None = None

    def __post_init__(self):
        self._deadline = self.started + self.boot_timeout
        self._marker = re.compile(rf"HUSK-LAB:{re.escape(self.token)}:(\w+)(?: (.*))?$")

    @property
    def booted(self):
        return self.kernel is not None

    def deadline(self):
        return None if self.finished or self.broken else self._deadline

    def feed(self, line, now):
        """Takes one console line; returns True once the session is over."""
        m = self._marker.search(line)
        if m:
            self._marker_line(m.group(1), m.group(2) or "", now)
        elif self._current and line.startswith("SKIP: "):
            self._skip_reason = line[len("SKIP: "):].strip()
        elif self._panic is None and PANIC.search(line):
            self._panic = PANIC.search(line).group(0).strip()
            self._break(f"kernel panic: {self._panic}", now)
        return self.finished or self.broken is not None

    def _marker_line(self, kind, rest, now):
        if kind == "READY":
            fields = dict(kv.split("=", 1) for kv in rest.split() if "=" in kv)
            self.kernel = fields.get("kernel", "?")
            self.guest_arch = fields.get("arch", "?")
            self._deadline = now + self.boot_timeout
        elif kind == "BEGIN":
            self._current, self._begun_at, self._skip_reason = rest.strip(), now, ""
            self._deadline = now + self.timeouts.get(self._current, self.boot_timeout)
        elif kind == "END" and self._current:
            m = re.match(r"(\S+) rc=(-?\d+)", rest)
            rc = int(m.group(2)) if m else -1
            if rc == 0:
                status, reason = "pass", ""
            elif rc == SKIP_RC:
                status, reason = "skip", self._skip_reason or "scenario skipped without saying why"
            else:
                status, reason = "fail", f"scenario exited with status {rc}"
            self.outcomes.append(Outcome(self._current, status, reason, now - self._begun_at))
            self._current = None
            self._deadline = now + self.boot_timeout
        elif kind == "DONE":
            self.finished = True

    def _break(self, why, now):
        if self.broken:
            return
        self.broken = why
        if self._current:
            self.outcomes.append(Outcome(self._current, "fail", why, now - self._begun_at))
            self._current = None

    def tick(self, now):
        """Checks the deadline; returns True once the session is over."""
        if not self.finished and not self.broken and now >= self._deadline:
            if self._current:
                limit = self.timeouts.get(self._current, self.boot_timeout)
                self._break(f"timed out after {limit:g} s (guest hung or scenario never ended)", now)
            elif not self.booted:
                self._break(f"guest did not boot within {self.boot_timeout:g} s", now)
            else:
                self._break(f"guest went silent for {self.boot_timeout:g} s between scenarios", now)
        return self.finished or self.broken is not None

    def guest_exited(self, code, now):
        """The QEMU process ended; a guest that did not say DONE broke."""
        if not self.finished:
            what = f"kernel panic: {self._panic}" if self._panic else f"guest stopped (qemu exit status {code})"
            self._break(what, now)

    def pending(self):
        """Scenarios that have no outcome yet."""
        done = {o.scenario for o in self.outcomes}
        return [s for s in self.scenarios if s not in done]
