"""The per-host limiter in Redis, shared by every worker process: one Lua script per step.

Each step ("take a slot or say how long to wait, and whether this is the probe";
"pause the host"; "count a failure") is one atomic script timed by the Redis
server's clock, so all workers see one state and their clocks need not agree.
Keys, per host, under ``ingest:polite``: ``bucket`` (tokens), ``pause`` (until
when), ``why`` (the pause's reason, for ``ingest stats``), ``breaker`` (the
breaker is open: its reason), ``probe`` (the half-open probe's lease) and
``fail`` (recent failures, a sorted set by time).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

from .breaker import BreakerPolicy, HostFailures, Trip
from .errors import TransientError
from .host_limits import (
    BREAKER_OFF,
    DEFAULT_PROBE_LEASE,
    KEY_PREFIX,
    BreakerReports,
    HostPause,
    HostRates,
    Slot,
    refused,
)

log = structlog.get_logger(__name__)

# KEYS[1] bucket hash {tokens, ts}; KEYS[2] pause-until (seconds, float as string);
# KEYS[3] breaker marker (its reason); KEYS[4] probe lease; KEYS[5] pause reason hash
# ARGV: rate (tokens/s), burst, max_wait (s), ttl (s), probe lease (ms)
# Returns {granted (0/1), wait_ms, flag, reason}. Granted means a slot is
# reserved: sleep wait_ms, then go; flag 1 then says this request is the
# breaker's probe. Not granted means the host is paused (flag 1, with the reason)
# or waiting would exceed max_wait (flag 0). While the breaker is open nobody
# waits out the pause in the bucket: the first request after it is the probe.
_TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local pause_until = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local open = redis.call('EXISTS', KEYS[3]) == 1
local probe = 0
if open then
  local reason = redis.call('GET', KEYS[3]) or ''
  if pause_until > now then
    return {0, math.ceil((pause_until - now) * 1000), 1, reason}
  end
  if not redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[5]) then
    return {0, math.max(redis.call('PTTL', KEYS[4]), 1000), 1,
            'waiting for the probe after a pause; ' .. reason}
  end
  probe = 1
end
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1])
local ts = tonumber(data[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
local start = now
if pause_until > now then
  start = pause_until
end
if start > ts then
  tokens = math.min(burst, tokens + (start - ts) * rate)
  ts = start
end
tokens = tokens - 1
local wait = (ts - now)
if tokens < 0 then
  wait = wait + (-tokens) / rate
end
if wait > max_wait then
  if probe == 1 then
    redis.call('DEL', KEYS[4])
  end
  if pause_until > now then
    return {0, math.ceil(wait * 1000), 1, redis.call('HGET', KEYS[5], 'reason') or ''}
  end
  return {0, math.ceil(wait * 1000), 0, ''}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('EXPIRE', KEYS[1], ttl)
return {1, math.ceil(wait * 1000), probe, ''}
"""

# KEYS[1] pause-until; KEYS[2] pause reason hash {reason, until}; KEYS[3] breaker
# marker; KEYS[4] probe lease; KEYS[5] failures
# ARGV[1] seconds; ARGV[2] reason; ARGV[3] breaker marker TTL (s), 0 for a plain pause.
# Only ever extends a pause. A breaker trip also opens the breaker and starts its count
# afresh.
_PAUSE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local seconds = tonumber(ARGV[1])
local want = now + seconds
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local ttl = math.ceil(seconds) + 1
if want > cur then
  redis.call('SET', KEYS[1], tostring(want), 'EX', ttl)
  redis.call('HSET', KEYS[2], 'reason', ARGV[2], 'until', tostring(want))
  redis.call('EXPIRE', KEYS[2], ttl)
end
local marker_ttl = tonumber(ARGV[3])
if marker_ttl > 0 then
  redis.call('SET', KEYS[3], ARGV[2], 'EX', math.ceil(marker_ttl))
  redis.call('DEL', KEYS[4], KEYS[5])
end
return 1
"""

# KEYS[1] failures (sorted set, scored by time); KEYS[2] pause-until; KEYS[3] breaker marker
# ARGV[1] member; ARGV[2] window (s)
# Returns {failures within the window, paused (0/1), breaker open (0/1)}.
_FAILURE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('EXPIRE', KEYS[1], math.ceil(window) + 1)
local pause_until = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local paused = 0
if pause_until > now then
  paused = 1
end
return {redis.call('ZCARD', KEYS[1]), paused, redis.call('EXISTS', KEYS[3])}
"""


class RedisHostLimiter(BreakerReports):
    """Token bucket, pauses and circuit breaker per host in Redis, shared by every worker."""

    def __init__(
        self,
        client: Any,
        rates: HostRates,
        *,
        max_wait: float = 30.0,
        prefix: str = KEY_PREFIX,
        sleep: Callable[[float], None] = time.sleep,
        breaker: BreakerPolicy = BREAKER_OFF,
        probe_lease: float = DEFAULT_PROBE_LEASE,
    ) -> None:
        self._redis = client
        self.rates = rates
        self.max_wait = max_wait
        self.prefix = prefix
        self.breaker = breaker
        self.probe_lease = probe_lease
        self._sleep = sleep
        self._bucket = client.register_script(_TOKEN_BUCKET_LUA)
        self._pause = client.register_script(_PAUSE_LUA)
        self._failure = client.register_script(_FAILURE_LUA)

    def _key(self, kind: str, host: str) -> str:
        return f"{self.prefix}:{kind}:{host}"

    def _keys(self, host: str) -> list[str]:
        return [self._key("bucket", host), self._key("pause", host)]

    def _reserve(self, host: str) -> Slot:
        rate = self.rates.for_host(host)
        ttl = int(max(60.0, rate.burst / rate.rate * 2 + self.max_wait))
        keys = [*self._keys(host), *(self._key(k, host) for k in ("breaker", "probe", "why"))]
        args = [rate.rate, rate.burst, self.max_wait, ttl, int(self.probe_lease * 1000)]
        granted, wait_ms, flag, reason = self._bucket(keys=keys, args=args)
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        return Slot(bool(int(granted)), int(wait_ms) / 1000.0, bool(int(flag)), text)

    def reserve(self, host: str) -> tuple[bool, float]:
        """Reserve the next slot for ``host``: ``(granted, seconds_to_wait)``."""
        slot = self._reserve(host)
        return slot.granted, slot.wait

    def acquire(self, host: str) -> bool:
        try:
            slot = self._reserve(host)
        except Exception as exc:  # redis.RedisError and connection failures
            raise TransientError(
                f"rate limiter unavailable: {exc}", error_class="limiter_unavailable"
            ) from exc
        if not slot.granted:
            raise refused(host, slot)
        if slot.wait > 0:
            self._sleep(slot.wait)
        return slot.flag

    def pause(self, host: str, seconds: float, *, reason: str = "asked to slow down") -> None:
        self._set_pause(host, seconds, reason, marker_ttl=0.0)

    def _set_pause(self, host: str, seconds: float, reason: str, *, marker_ttl: float) -> None:
        keys = [self._key(k, host) for k in ("pause", "why", "breaker", "probe", "fail")]
        try:
            self._pause(keys=keys, args=[max(seconds, 0.001), reason, marker_ttl])
        except Exception as exc:  # a lost pause is not worth failing the fetch over
            log.warning("host_pause_failed", host=host, error=str(exc))
            return
        log.info("host_paused", host=host, seconds=seconds, reason=reason)

    def _count_failure(self, host: str, member: str) -> HostFailures:
        keys = [self._key(k, host) for k in ("fail", "pause", "breaker")]
        recent, paused, opened = self._failure(keys=keys, args=[member, self.breaker.window])
        return HostFailures(recent=int(recent), paused=bool(int(paused)), open=bool(int(opened)))

    def _trip(self, host: str, trip: Trip) -> None:
        # The marker outlives the pause by the window: the first request after the
        # pause probes, and if nobody asks for the host that long, it starts afresh.
        self._set_pause(
            host, trip.seconds, trip.reason, marker_ttl=trip.seconds + self.breaker.window
        )

    def _close(self, host: str) -> None:
        self._redis.delete(*(self._key(k, host) for k in ("breaker", "probe", "fail", "why")))

    def paused_hosts(self) -> list[HostPause]:
        """Every host paused now, with its reason (from any worker)."""
        seconds, micros = self._redis.time()
        now = int(seconds) + int(micros) / 1e6
        found: list[HostPause] = []
        pattern = self._key("why", "*")
        for key in self._redis.scan_iter(match=pattern, count=500):
            raw = self._redis.hgetall(key)
            values = {_text(k): _text(v) for k, v in raw.items()}
            left = float(values.get("until") or 0) - now
            if left > 0:
                host = _text(key).removeprefix(pattern[:-1])
                found.append(HostPause(host, left, values.get("reason", "")))
        return sorted(found, key=lambda p: p.host)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
