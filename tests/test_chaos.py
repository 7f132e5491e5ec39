"""The chaos harness in its short form: a load signalled three times against an API serving 1 fill
in 50 broken, then rerun cleanly (benchmarks/chaos.py has the full run; signals to plain loads are
test_fail_well.py's and test_kill_resume.py's, two loads started together test_run_safety.py's)."""

import pytest

from benchmarks.chaos import SHORT, run

STOP_LIMIT = 10.0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_signalled_loads_leave_nothing_stuck_lost_or_doubled():
    trials = run(SHORT, seed=11)

    assert [trial.scenario for trial in trials] == list(SHORT)
    for trial in trials:
        assert not trial.stuck, trial.rerun_error
        assert (trial.lost, trial.doubled) == (0, 0), trial
        assert all(seconds < STOP_LIMIT for seconds in trial.stop_seconds), trial
    (broken_fills,) = trials
    assert len(broken_fills.signals) == 3
    assert broken_fills.set_apart > 0, "the broken fills are set apart, and counted as such"
