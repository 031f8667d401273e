"""This process's memory as Linux reports it in /proc/self/status: resident now (VmRSS) and its peak
(VmHWM). The peak is the process's own: ru_maxrss is not, since Linux carries it across fork+exec, so a
child started by a large process reports at least its parent's peak. Torch-free; 0 where /proc is missing."""

from __future__ import annotations

from pathlib import Path


def rss_bytes() -> int:
    """Resident memory now."""
    return _status_bytes("VmRSS")


def peak_rss_bytes() -> int:
    """The highest resident memory this process has had."""
    return _status_bytes("VmHWM")


def _status_bytes(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        pass
    return 0
