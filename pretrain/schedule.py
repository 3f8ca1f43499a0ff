"""The learning rate of every optimizer step: linear warmup, then linear decay to 0, and what
extending or shortening a run on resume does to it.

Optimizer step k (1-based) of a run of T steps with warmup W and peak lr P runs at
    P * k / W                              for k <= W,
    P * v * (T + 1 - k) / (T + 1 - a)      for k > W,
the decay line going through the anchor (a, v) = (W, 1) and reaching 0 one step after the last
step, so the last step still learns. Step 1 runs at P / W, never at 0.

A resume that changes the run's length (`--resume --allow-change train.max_steps`, or
train.epochs) at step s re-anchors the decay at (s, v(s)), the rate the run had reached: the
lr goes on from there without a jump and decays to 0 one step after the new last step. (Given
a longer T alone, the decay line would jump up at the resume step.) A resume inside the warmup
keeps the warmup and only moves the end. Every such change is recorded with its step in
RUN/config.json, from which the schedule is rebuilt at each later resume.

`ScheduleDriver` applies the schedule to a torch optimizer; DeepSpeed calls its `step()` after
every optimizer step and saves its state (only the number of steps done) in each checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LrSchedule:
    peak: float
    warmup_steps: int
    total_steps: int
    reanchors: tuple[tuple[int, int], ...] = ()   # (at step, new total steps), in order

    def __post_init__(self):
        if self.warmup_steps < 1 or self.total_steps < 1:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) and total_steps "
                             f"({self.total_steps}) must be at least 1")

    def shape(self, step: int) -> float:
        """The lr of optimizer step `step` (1-based) as a fraction of the peak."""
        warmup = self.warmup_steps
        if step <= warmup:
            return step / warmup
        anchor, value, total = warmup, 1.0, self.total_steps
        for at, new_total in self.reanchors:
            if step <= at:
                break
            if at > warmup:
                value = _decay(at, anchor, value, total)
                anchor = at
            total = new_total
        return _decay(step, anchor, value, total)

    def lr(self, step: int) -> float:
        return self.peak * self.shape(step)

    @property
    def final_total(self) -> int:
        """The run's length after every change of it."""
        return self.reanchors[-1][1] if self.reanchors else self.total_steps

    def resized(self, at_step: int, total_steps: int) -> "LrSchedule":
        """The schedule of a run resumed after `at_step` steps with `total_steps` steps in all."""
        if total_steps == self.final_total:
            return self
        if total_steps <= at_step:
            raise ValueError(f"the run has done {at_step} steps; it cannot end at step "
                             f"{total_steps}")
        return LrSchedule(self.peak, self.warmup_steps, self.total_steps,
                          self.reanchors + ((at_step, total_steps),))


def _decay(step: int, anchor: int, value: float, total: int) -> float:
    """The decay line through (anchor, value) that reaches 0 at total + 1, at `step`."""
    return max(0.0, value * (total + 1 - step) / (total + 1 - anchor))


class ScheduleDriver:
    """Sets the optimizer's lr before each step from an LrSchedule; what DeepSpeed takes as its
    `lr_scheduler` (step, state_dict, load_state_dict, get_lr)."""

    def __init__(self, optimizer, schedule: LrSchedule, steps_done: int = 0):
        self.optimizer = optimizer
        self.schedule = schedule
        self.steps_done = steps_done
        self.apply()

    def apply(self) -> None:
        """Set the optimizer's lr to the next step's (also after loading a checkpoint, whose
        optimizer state carries the lr the run had when it was saved)."""
        lr = self.schedule.lr(self.steps_done + 1)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self, **_) -> None:
        self.steps_done += 1
        self.apply()

    def get_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    get_last_lr = get_lr

    def state_dict(self) -> dict:
        """Only the position: the schedule itself comes from the run's config at each start."""
        return {"steps_done": self.steps_done}

    def load_state_dict(self, state: dict) -> None:
        self.steps_done = int(state["steps_done"])
        self.apply()
