"""What other processes hold and whether they end, read from /proc (Linux)."""

from __future__ import annotations

import os
import select
from pathlib import Path
from typing import List


def holders_of(directory: Path) -> List[str]:
    """Every process with a descriptor or a memory map under ``directory``, as ``pid:path``."""
    root = os.path.realpath(directory) + os.sep
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith(root):
                    found.append(f"{pid}:{target}")
            with open(f"/proc/{pid}/maps") as maps:
                for line in maps:
                    parts = line.split(maxsplit=5)
                    if len(parts) == 6 and parts[5].strip().startswith(root):
                        found.append(f"{pid}:map:{parts[5].strip()}")
        except OSError:
            continue  # the process ended while we looked
    return found


def wait_exit(pid: int, within: float) -> bool:
    """Whether process ``pid`` (not necessarily our child) exits within ``within`` seconds;
    waits on a pidfd, so it returns as soon as it exits."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], within)
        return bool(readable)
    finally:
        os.close(fd)
