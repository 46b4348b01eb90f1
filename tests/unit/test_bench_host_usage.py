"""bench/run.py's host shares: where the cores' time went between two /proc/stat readings."""

from __future__ import annotations

import time

import pytest

from bench.run import (
    HostSampler,
    _cores_besides,
    _host_ticks,
    _host_usage,
    _shares,
    _window_usage,
    main,
)


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


def _ticks(busy: int, idle: int) -> dict[str, int]:
    return {"user": busy, "nice": 0, "system": 0, "idle": idle, "iowait": 0, "irq": 0,
            "softirq": 0, "steal": 0}  # fmt: skip


def test_window_usage_takes_the_samples_inside_the_ratios_window() -> None:
    from datetime import UTC, datetime

    t = datetime(2026, 12, 6, 1, 0, 0, tzinfo=UTC).timestamp()
    # Idle at the start and the end of the wait, 10 % idle in between.
    samples = [
        (t - 2.0, _ticks(0, 0)),
        (t - 1.0, _ticks(0, 100)),  # before the window: all idle
        (t + 0.2, _ticks(10, 190)),
        (t + 10.2, _ticks(910, 290)),  # 900 busy, 100 idle inside
        (t + 11.0, _ticks(910, 390)),  # after the window: all idle
    ]
    start = datetime.fromtimestamp(t, UTC)
    end = datetime.fromtimestamp(t + 10.5, UTC)
    usage = _window_usage(samples, start, end)
    assert usage is not None
    assert usage["idle"] == 0.1
    assert usage["busy"] == 0.9
    assert usage["seconds"] == 10.0
    # The database's naive timestamps are UTC.
    naive = _window_usage(samples, start.replace(tzinfo=None), end.replace(tzinfo=None))
    assert naive == usage
    # The whole wait, as the bench's "host" figure reads it, shows more idle.
    assert _host_usage(samples[0][1], samples[-1][1])["idle"] > usage["idle"]
    # Fewer than two samples inside: no figure rather than a wrong one.
    assert _window_usage(samples, start, datetime.fromtimestamp(t + 5, UTC)) is None


def test_host_sampler_samples_until_stopped() -> None:
    sampler = HostSampler(interval=0.05)
    sampler.start()
    time.sleep(0.3)
    sampler.stop()
    assert not sampler.is_alive()
    times = [t for t, _ticks in sampler.samples]
    assert len(times) >= 4
    assert times == sorted(times)
    assert all(sum(ticks.values()) > 0 for _t, ticks in sampler.samples)


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
