"""Peak memory of this process and of the worker processes it forked.

`getrusage(RUSAGE_SELF)` sees this process only: a section run in a forked worker allocates
in the worker, where RUSAGE_SELF never sees it. `RUSAGE_CHILDREN` gives the largest peak of
the children this process has waited for (a pool's workers, once the pool is closed). A forked
worker shares the parent's pages copy-on-write, and its RSS counts those shared pages too, so
the two figures are reported side by side rather than added up: the machine's peak lies
between the larger of them and their sum over the workers. (On Linux a process's figure also
starts from the peak of the process that launched it, carried across exec: the benchmark
launches each backend's process from the small CLI process, so that start is small.)
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class PeakMemory:
    self_bytes: int  # this process's peak RSS
    children_bytes: int  # the largest peak RSS among the children waited for (0: none)


def _maxrss_bytes(who: int) -> int:
    rss = resource.getrusage(who).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB, macOS bytes


def peak_memory() -> PeakMemory:
    return PeakMemory(_maxrss_bytes(resource.RUSAGE_SELF), _maxrss_bytes(resource.RUSAGE_CHILDREN))
