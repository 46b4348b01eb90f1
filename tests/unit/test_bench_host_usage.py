"""bench/run.py's host shares: where the cores' time went between two /proc/stat readings."""

from __future__ import annotations

from bench.run import _host_ticks, _host_usage, _shares


def test_host_usage_splits_busy_idle_and_the_kernel_share() -> None:
    before = dict.fromkeys(
        ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"), 0
    )
    after = {
        "user": 600,
        "nice": 0,
        "system": 150,
        "idle": 100,
        "iowait": 50,
        "irq": 10,
        "softirq": 40,
        "steal": 50,
    }
    usage = _host_usage(before, after)
    assert usage == {"busy": 0.8, "kernel": 0.2, "idle": 0.1, "iowait": 0.05, "steal": 0.05}
    assert _shares(usage) == "80 % / 10 % / 5 % (kernel 20 %)"
    # Results written before the kernel share was measured still print.
    assert _shares({"busy": 0.9, "idle": 0.1, "iowait": 0.0}) == "90 % / 10 % / 0 %"


def test_host_ticks_read_this_machine() -> None:
    ticks = _host_ticks()
    assert set(ticks) >= {"user", "system", "idle", "softirq"}
    assert all(value >= 0 for value in ticks.values())
    assert sum(ticks.values()) > 0
