"""Per-frame work in a process pool: camera estimation, scoring and keypoint derivation.

A validation epoch, a scored folder or a split to derive has thousands of frames, each
independent, so they are spread over the CPUs this process may use; few frames are done here,
where a pool would cost more to start than it saves. One home for the data and evaluation rooms
alike (neither may import the other's).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

import cv2

log = logging.getLogger(__name__)

MIN_FRAMES_PER_WORKER = 24
"""Below this many frames per process a pool costs more to start (seconds: each worker imports
OpenCV, SoccerNet and the caller's main module) than it saves at ~0.07 s a frame."""

_T = TypeVar("_T")
_R = TypeVar("_R")


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's count, under a container or taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _single_threaded() -> None:
    """Pool workers already fill every CPU; OpenCV's own threads would only contend with them."""
    cv2.setNumThreads(1)


def _pool_can_start() -> bool:
    """Whether forkserver workers can re-import ``__main__``, as they must: not when it is stdin or gone."""
    main_path = getattr(sys.modules["__main__"], "__file__", None)
    return main_path is None or os.path.exists(main_path)


def map_frames(function: Callable[[_T], _R], items: Sequence[_T], workers: int | None = None,
               min_per_worker: int = MIN_FRAMES_PER_WORKER) -> list[_R]:
    """``function`` over ``items`` in order, in a process pool when each worker gets at least
    ``min_per_worker`` frames (a cheaper function needs more to pay for the pool's start).

    The pool uses forkserver, not fork: the caller may be a training process with torch's and
    OpenCV's thread pools running, which a fork would copy half-initialised. ``function`` must be
    a module-level function and ``items`` picklable. A pool that cannot start or dies (a worker
    killed for memory) costs time, not the result: the frames are then done here, serially.
    """
    items = list(items)
    workers = min(workers or available_cpus(), max(1, len(items) // min_per_worker))
    if workers > 1 and _pool_can_start():
        chunksize = max(1, math.ceil(len(items) / (workers * 4)))
        context = multiprocessing.get_context("forkserver")
        try:
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_single_threaded) as pool:
                return list(pool.map(function, items, chunksize=chunksize))
        except BrokenProcessPool as error:
            log.warning("process pool failed (%s); doing %d frames here, serially", error, len(items))
    return [function(item) for item in items]
