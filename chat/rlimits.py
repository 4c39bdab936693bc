"""The process's open-files limit: every socket is a file, and the common soft default of
1,024 would refuse visitors long before the hub runs out of memory or CPU."""

from __future__ import annotations

import resource


def raise_open_files() -> int:
    """Lift the soft open-files limit to the hard limit; return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
