"""Structured log events, to assert on: what this process logged (the ``log_events``
fixture) or the JSON lines of a worker process's log."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Event = dict[str, Any]


class Events(list[Event]):
    """Log events in the order they were logged, each a dict with at least ``event``."""

    @classmethod
    def parse(cls, text: str) -> Events:
        """The JSON lines of a process's output; other lines are passed over."""
        events = cls()
        for line in text.splitlines():
            if line.startswith("{"):
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a killed process
                    continue
                if isinstance(event, dict) and "event" in event:
                    events.append(event)
        return events

    def named(self, event: str, **fields: Any) -> list[Event]:
        """The events called ``event`` whose ``fields`` have the given values."""
        return [
            e
            for e in self
            if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())
        ]

    def expect(self, event: str, **fields: Any) -> Event:
        """The first event called ``event`` with those field values; fails, listing what
        was logged, when there is none."""
        found = self.named(event, **fields)
        if not found:
            logged = [
                {k: v for k, v in e.items() if k not in ("timestamp", "logger")}
                for e in self
                if e.get("event") == event
            ] or sorted({str(e.get("event")) for e in self})
            raise AssertionError(f"no {event!r} event with {fields}; logged: {logged}")
        return found[0]


# The ``log_events`` fixture: call it for the events logged so far.
LogEvents = Callable[[], Events]
