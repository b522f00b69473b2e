"""When and how long to wait before sending a refused request again.

The service answers 429 ``busy`` (every sandbox worker stayed busy; ``Retry-After: 1``)
and 503 (an engine is starting or down; ``Retry-After: 5``). Both clients retry those
with exponential backoff and jitter, waiting what ``Retry-After`` asks when it is sent
(capped), like the OpenAI SDK. Only idempotent calls (GET, PUT, DELETE) are retried
unless ``Retry(non_idempotent=True)``: a POST may have done something before failing.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["IDEMPOTENT_METHODS", "Retry"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True, slots=True)
class Retry:
    """The retry policy of a client (``Sandlot(retry=...)``); ``Retry(max_retries=0)`` or
    ``retry=0`` turns retrying off.

    ``max_retries``: sends after the first. The n-th wait is ``initial_delay_s * 2**(n-1)``,
    at most ``max_delay_s``, scaled by a random 0.75-1.0 (so clients that were refused
    together don't come back together), unless the answer's ``Retry-After`` (seconds or an
    HTTP date) says otherwise: then that, up to ``max_retry_after_s``; a longer one is not
    waited for (the error is raised). ``statuses``: which answers are retried.
    ``non_idempotent``: retry POST calls too (``run_code``, ``generate``, creating
    namespaces and keys, rollbacks, tool calls); for ``run_code`` this is safe on 429
    ``busy`` and 503, which the service answers before a run starts.
    """

    max_retries: int = 2
    initial_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 60.0
    statuses: frozenset[int] = frozenset({429, 503})
    non_idempotent: bool = False

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries is {self.max_retries}; 0 or more")
        for name in ("initial_delay_s", "max_delay_s", "max_retry_after_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} is {getattr(self, name)}; 0 or more")

    @classmethod
    def of(cls, value: Retry | int | None) -> Retry:
        """A policy from the client's ``retry`` argument: a Retry, a number of retries, or
        None (the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, Retry):
            return value
        return cls(max_retries=value)

    def applies_to(self, method: str) -> bool:
        return method.upper() in IDEMPOTENT_METHODS or self.non_idempotent

    def wait_s(
        self, retry: int, status: int, headers: Mapping[str, str], *, now: float | None = None
    ) -> float | None:
        """Seconds to wait before retry number ``retry`` (1, 2, ...) of an answer with this
        status and headers; None: don't retry (not retryable, retries spent, or a
        ``Retry-After`` beyond ``max_retry_after_s``)."""
        if status not in self.statuses or retry > self.max_retries:
            return None
        asked = retry_after_s(headers.get("retry-after"), now=now)
        if asked is not None:
            return asked if asked <= self.max_retry_after_s else None
        backoff = min(self.initial_delay_s * 2.0 ** (retry - 1), self.max_delay_s)
        return backoff * (0.75 + random.random() / 4)


def retry_after_s(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date; None if absent or
    unreadable (then the backoff applies)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))
