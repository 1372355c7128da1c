"""Deterministic sampling by correlation id.

The decision is a hash of the correlation id compared with the collection's rate,
so every record of one request (inputs, outputs, request, response) is kept or
dropped together, in every process, with no coordination. Because the same hash
is compared with each rate, a request kept at rate 0.1 is also kept at 0.5.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

_SCALE = 2**64


def sample_point(correlation_id: str) -> float:
    """Where `correlation_id` falls in [0, 1): the same id always gives the same point."""
    digest = hashlib.blake2b(correlation_id.encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big") / _SCALE


class Sampler:
    """Keeps a fraction `rate` of correlation ids, per collection."""

    def __init__(self, default_rate: float = 1.0, rates: Mapping[str, float] | None = None) -> None:
        self.default_rate = float(default_rate)
        self.rates = dict(rates or {})

    def rate(self, collection: str) -> float:
        return self.rates.get(collection, self.default_rate)

    def should_sample(self, collection: str, correlation_id: str) -> bool:
        rate = self.rates.get(collection, self.default_rate)
        if rate >= 1.0:
            return True
        if rate <= 0.0:
            return False
        return sample_point(correlation_id) < rate
