"""The one CPU measure of the benchmarks: a process's CPU time, read from /proc by its pid.

`process_cpu_s` is utime + stime of every thread the process ever ran (/proc/PID/stat, whole
clock ticks: 10 ms). `CpuSample` adds each live thread's run time in nanoseconds
(/proc/PID/task/*/schedstat, the clock time.process_time() reads), which a difference uses when
the same threads ran throughout, so a short window is not rounded to ticks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """utime + stime of every thread of `pid`, in seconds (whole clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(frozen=True)
class CpuSample:
    """A process's CPU time, coarse (all threads ever, in ticks) and precise (live threads, in ns)."""

    ticks_s: float
    threads_ns: dict[int, int]

    @classmethod
    def of(cls, pid: int) -> CpuSample:
        threads: dict[int, int] = {}
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    threads[int(tid)] = int(f.read().split()[0])
        except OSError:  # no schedstat (kernel without it), or a thread that just ended
            threads = {}
        return cls(process_cpu_s(pid), threads)

    def precise_since(self, earlier: CpuSample) -> bool:
        return bool(self.threads_ns) and self.threads_ns.keys() == earlier.threads_ns.keys()

    def __sub__(self, earlier: CpuSample) -> float:
        """CPU seconds from `earlier` to this sample: precise when the same threads ran throughout."""
        if self.precise_since(earlier):
            return sum(self.threads_ns[t] - earlier.threads_ns[t] for t in self.threads_ns) / 1e9
        return self.ticks_s - earlier.ticks_s


def threads_cpu_ns(pid: int) -> dict[str, int]:
    """Each live thread's run time in ns (/proc/PID/task/*/schedstat), keyed "comm:tid" (Python
    3.11 leaves every thread's comm as the process's: the tid tells them apart, in start order)."""
    by_name: dict[str, int] = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                by_name[f"{name}:{tid}"] = int(f.read().split()[0])
    except OSError:  # a thread that just ended, or the process
        pass
    return by_name
