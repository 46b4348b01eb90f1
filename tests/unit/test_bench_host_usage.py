"""bench/run.py's host shares: where the cores' time went between two /proc/stat readings."""

from __future__ import annotations

import pytest

from bench.run import _cores_besides, _host_ticks, _host_usage, _shares, main


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


def test_host_ticks_of_some_cores_add_up_to_the_hosts() -> None:
    import os

    cores = sorted(os.sched_getaffinity(0))
    if sorted(range(os.cpu_count() or 0)) != cores:
        pytest.skip("this process may not use every core of the host")
    whole = _host_ticks()
    parts = [_host_ticks({core}) for core in cores]
    later = _host_ticks()
    # Read at slightly different moments: each core's ticks sum to the host's, within
    # the ticks that passed between the readings (and a tick of rounding per core: the
    # kernel converts the total and each core's time to ticks separately).
    slack = len(cores)
    for name in ("user", "system", "idle"):
        assert whole[name] - slack <= sum(part[name] for part in parts) <= later[name] + slack
    assert _host_ticks(set()) == dict.fromkeys(whole, 0)


def test_services_core_leaves_the_other_cores_to_the_workers() -> None:
    import os

    cores = os.sched_getaffinity(0)
    assert _cores_besides(None) is None
    one = min(cores)
    assert _cores_besides(one) == cores - {one}


def test_services_core_must_be_a_core_this_process_may_use() -> None:
    with pytest.raises(SystemExit):
        main(["--services-core", "4096", "--skip-baseline"])
