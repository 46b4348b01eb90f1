"""bench/stage_cpu.py: the pool's CPU by stage, each probe counting only its own share."""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import pytest

from bench import stage_cpu


def _burn(seconds: float) -> None:
    """Spend about ``seconds`` of this thread's CPU."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        sum(range(1000))


def _cpu(stage: str) -> float:
    return float(stage_cpu.snapshot()["cpu_s"].get(stage, 0.0))


def test_a_nested_probe_is_not_counted_twice() -> None:
    inner = stage_cpu.probe("test-inner", lambda: _burn(0.06))

    def outer_work() -> None:
        _burn(0.03)
        inner()

    outer = stage_cpu.probe("test-outer", outer_work)
    outer_before, inner_before = _cpu("test-outer"), _cpu("test-inner")
    started = time.thread_time()
    outer()
    spent = time.thread_time() - started
    outer_own = _cpu("test-outer") - outer_before
    inner_own = _cpu("test-inner") - inner_before
    assert inner_own >= 0.06
    assert 0.03 <= outer_own < 0.05  # without the inner call's 0.06
    assert outer_own + inner_own == pytest.approx(spent, abs=0.005)
    assert stage_cpu.snapshot()["calls"]["test-outer"] >= 1


def test_wall_time_less_cpu_is_the_wait() -> None:
    waits = stage_cpu.probe("test-waits", lambda: time.sleep(0.05))
    before = stage_cpu.snapshot()
    waits()
    after = stage_cpu.snapshot()
    wall = after["wall_s"]["test-waits"] - before["wall_s"].get("test-waits", 0.0)
    cpu = after["cpu_s"]["test-waits"] - before["cpu_s"].get("test-waits", 0.0)
    assert wall >= 0.05
    assert cpu < 0.01


def test_a_probe_counts_a_call_that_raises() -> None:
    def fails() -> None:
        _burn(0.02)
        raise ValueError("bad page")

    probed = stage_cpu.probe("test-raises", fails)
    before = _cpu("test-raises")
    with pytest.raises(ValueError, match="bad page"):
        probed()
    assert _cpu("test-raises") - before >= 0.02


def test_install_probes_an_attribute_once(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("stage_cpu_test_module")
    module.work = lambda x: x + 1  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    probes = [(module.__name__, "work", "test-installed")]
    stage_cpu.install(probes)
    first = module.work  # type: ignore[attr-defined]
    stage_cpu.install(probes)
    assert module.work is first  # type: ignore[attr-defined]
    calls = stage_cpu.snapshot()["calls"].get("test-installed", 0)
    assert module.work(1) == 2  # type: ignore[attr-defined]
    assert stage_cpu.snapshot()["calls"]["test-installed"] == calls + 1


def test_the_probed_names_exist_in_the_pipeline() -> None:
    """A renamed pipeline function would otherwise leave its stage silently unprobed."""
    import importlib

    for module_name, attribute, _stage in stage_cpu.PROBES:
        assert callable(getattr(importlib.import_module(module_name), attribute))


def test_per_entry_is_the_difference_of_two_readings(tmp_path: Path) -> None:
    stage_cpu.write(tmp_path)
    (written,) = stage_cpu.read(tmp_path).values()
    assert set(written) == {"pid", "process_cpu_s", "cpu_s", "wall_s", "calls"}
    before = {1: {"cpu_s": {"extract": 2.0, "store": 0.5}}}
    after = {
        1: {"cpu_s": {"extract": 6.0, "store": 0.9}},
        2: {"cpu_s": {"extract": 4.0, "fetch": 0.2}},  # a child forked in between
    }
    ms = stage_cpu.per_entry(before, after, entries=1000)
    assert ms["extract"] == 8.0
    assert ms["store"] == 0.4
    assert ms["fetch"] == 0.2
    assert ms["classify"] == 0.0
    wall = {**ms, "store": 1.4, "fetch": 3.0}  # the store waited 1 ms, the fetch 2.8
    table = stage_cpu.budget(ms, wall, pool_ms=10.0, process_wall_ms=12.0)
    assert table["bare_work"] == 8.0
    assert table["not_probed"] == pytest.approx(10.0 - 8.6)
    assert table["pool_added"] == 2.0
    assert table["waits"]["store"] == 1.0
    assert table["waits"]["fetch"] == 2.8
    assert table["waits"]["extract"] == 0.0
    # The fetch runs on the prefetch thread: not part of the main thread's wall.
    assert table["outside_stages"] == pytest.approx(12.0 - (8.0 + 1.4))


def test_read_skips_a_file_being_written(tmp_path: Path) -> None:
    (tmp_path / "7.json").write_text('{"pid": 7, "cpu_s"')
    assert stage_cpu.read(tmp_path) == {}
    assert stage_cpu.read(tmp_path / "missing") == {}
