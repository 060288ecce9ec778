"""Counting what the cache does: ``session.cache.stats`` and the optional exporters.

Everything here is fed by the driver's one event per request (``backend.events``):

- :class:`CacheStats` (``stats.py``): in-process counters, ``backend.stats``.
- ``prometheus.py``: the same as Prometheus metrics (extra ``aiocache-http[prometheus]``).
- ``opentelemetry.py``: the same as OpenTelemetry metrics and span attributes (extra
  ``aiocache-http[opentelemetry]``).
- ``cache_status.py``: the RFC 9211 ``Cache-Status`` header value of one request.
"""

from __future__ import annotations

from .cache_status import cache_status
from .stats import CacheStats

__all__ = ["CacheStats", "cache_status"]
