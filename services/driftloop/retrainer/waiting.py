"""Waiting for something to become true, bounded in time (tenacity does the loop): the corrections a
run wants, the canary's traffic, a rollout step showing on the replica."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_delay, wait_fixed

T = TypeVar("T")


def poll(read: Callable[[], T], done: Callable[[T], bool], timeout_s: float, every_s: float,
         sleep: Callable[[float], None] = time.sleep, on_wait: Callable[[T], None] | None = None) -> T:
    """``read()`` every ``every_s`` until ``done`` accepts its result or ``timeout_s`` has passed;
    returns the last reading either way (an exception from ``read`` propagates at once). ``on_wait``
    sees each reading that is followed by a pause."""

    def before_sleep(state: RetryCallState) -> None:
        if on_wait is not None:
            on_wait(state.outcome.result())

    return Retrying(retry=retry_if_result(lambda got: not done(got)), stop=stop_after_delay(timeout_s),
                    wait=wait_fixed(every_s), sleep=sleep, before_sleep=before_sleep,
                    retry_error_callback=lambda state: state.outcome.result())(read)
