"""The learning-rate schedule (pretrain/schedule.py): warmup from the first step, linear decay
to 0 one step past the last, a run resized on resume going on without a jump, and the driver
DeepSpeed steps, on a real torch optimizer."""

from __future__ import annotations

import pytest
import torch

from pretrain.schedule import LrSchedule, ScheduleDriver


def driven_lrs(schedule: LrSchedule, steps: int, done: int = 0) -> list[float]:
    """The lr each optimizer step runs at, as DeepSpeed drives it: read, step, repeat."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=123.0)
    driver = ScheduleDriver(optimizer, schedule, steps_done=done)
    lrs = []
    for _ in range(steps - done):
        lrs.append(optimizer.param_groups[0]["lr"])
        driver.step()
    return lrs


@pytest.mark.parametrize("warmup, steps", [(5, 24), (2, 10), (10, 10), (1, 6)])
def test_lr_warms_up_from_the_first_step_and_decays_after_the_peak(warmup, steps):
    lrs = driven_lrs(LrSchedule(1.0, warmup, steps), steps)
    ramp = [k / warmup for k in range(1, warmup + 1)]  # step k of the warmup runs at lr*k/w
    assert lrs[:warmup] == pytest.approx(ramp) and lrs[0] > 0
    decay = [(steps + 1 - k) / (steps + 1 - warmup) for k in range(warmup, steps + 1)]
    assert lrs[warmup - 1:] == pytest.approx(decay)  # linear, reaching 0 just past the last step
    assert lrs[-1] > 0


def test_a_longer_run_decays_from_where_it_was_to_the_new_end():
    schedule = LrSchedule(2.0, 5, 20)
    longer = schedule.resized(12, 40)
    assert [longer.lr(k) for k in range(1, 13)] == [schedule.lr(k) for k in range(1, 13)]
    at = schedule.lr(12)
    assert [longer.lr(k) for k in (13, 20, 40, 41)] == pytest.approx(
        [at * (41 - k) / 29 for k in (13, 20, 40, 41)])
    # and again, later: each re-anchoring starts from the rate reached
    again = longer.resized(30, 35)
    assert again.lr(31) == pytest.approx(longer.lr(30) * 5 / 6) and again.lr(36) == 0
    assert again.final_total == 35 and again.resized(30, 35) is again


def test_a_resize_inside_the_warmup_keeps_the_warmup():
    longer = LrSchedule(1.0, 10, 20).resized(4, 50)
    assert [longer.lr(k) for k in range(1, 11)] == pytest.approx([k / 10 for k in range(1, 11)])
    assert longer.lr(11) == pytest.approx(40 / 41)


def test_a_run_cannot_end_before_the_steps_it_has_done():
    with pytest.raises(ValueError, match="has done 12 steps; it cannot end at step 10"):
        LrSchedule(1.0, 5, 20).resized(12, 10)


def test_the_driver_resumes_at_its_saved_position():
    schedule = LrSchedule(1.0, 3, 12)
    straight = driven_lrs(schedule, 12)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    driver = ScheduleDriver(optimizer, schedule)
    for _ in range(7):
        driver.step()
    state = driver.state_dict()
    assert state == {"steps_done": 7}
    fresh = ScheduleDriver(optimizer, schedule)
    fresh.load_state_dict(state)
    assert fresh.get_lr() == [pytest.approx(straight[7])]
