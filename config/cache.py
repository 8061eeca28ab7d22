"""The cache: Redis, failing soft.

Everything Caseline keeps in the cache can be lost (sign-in rate-limit counters, API
throttles, who is viewing a case, draft locks). So when Redis is down or hung, the
cache answers as an empty cache would (a miss, a write that did not stick) instead of
failing the page: the desk keeps working without those extras, and after one failure
Redis is left alone for ``RETRY_SECONDS`` so an outage costs a bounded wait once, not
on every call. Each failure is logged.
"""

from __future__ import annotations

import logging
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class FailSoftRedisCache(RedisCache):
    RETRY_SECONDS = 5.0

    def __init__(self, server, params):
        super().__init__(server, params)
        self._down_until = 0.0

    def _attempt(self, operation: str, call, fallback):
        if time.monotonic() < self._down_until:
            return fallback
        try:
            return call()
        except UNAVAILABLE as exc:
            self._down_until = time.monotonic() + self.RETRY_SECONDS
            logger.warning("cache unavailable (%s during %s); carrying on without it", exc, operation)
            return fallback

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._attempt(
            "add", lambda: super(FailSoftRedisCache, self).add(key, value, timeout, version), False
        )

    def get(self, key, default=None, version=None):
        return self._attempt(
            "get", lambda: super(FailSoftRedisCache, self).get(key, default, version), default
        )

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._attempt(
            "set", lambda: super(FailSoftRedisCache, self).set(key, value, timeout, version), None
        )

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._attempt(
            "touch", lambda: super(FailSoftRedisCache, self).touch(key, timeout, version), False
        )

    def delete(self, key, version=None):
        return self._attempt("delete", lambda: super(FailSoftRedisCache, self).delete(key, version), False)

    def get_many(self, keys, version=None):
        return self._attempt("get_many", lambda: super(FailSoftRedisCache, self).get_many(keys, version), {})

    def has_key(self, key, version=None):
        return self._attempt("has_key", lambda: super(FailSoftRedisCache, self).has_key(key, version), False)

    def incr(self, key, delta=1, version=None):
        # As if the key were missing, which is what an empty cache would say.
        result = self._attempt(
            "incr", lambda: super(FailSoftRedisCache, self).incr(key, delta, version), None
        )
        if result is None:
            raise ValueError(f"Key '{key}' not found (cache unavailable).")
        return result

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._attempt(
            "set_many", lambda: super(FailSoftRedisCache, self).set_many(data, timeout, version), list(data)
        )

    def delete_many(self, keys, version=None):
        return self._attempt(
            "delete_many", lambda: super(FailSoftRedisCache, self).delete_many(keys, version), None
        )

    def clear(self):
        return self._attempt("clear", lambda: super(FailSoftRedisCache, self).clear(), False)
