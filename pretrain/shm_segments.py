"""Free the shared-memory buffers that DeepSpeed's CPU allreduce leaves behind in /dev/shm.

On the CPU accelerator, when every rank runs on one machine (the `deepspeed` launcher sets
LOCAL_SIZE to the world size), `deepspeed.init_distributed` maps a ~69 MB POSIX shared-memory
segment per rank, named `deepspeed_allreduce_buffer_{uid}_{MASTER_ADDR}_{MASTER_PORT}_{rank}`,
and each rank opens its peers' segments by that name. DeepSpeed (0.19) never unlinks them, so
every run leaves world_size x 69 MB of RAM behind in the tmpfs /dev/shm until the machine
reboots: measured here, a test suite's worth of 2-rank runs filled 21 of 24 GiB and the machine
slowed to a hang. A peer's name is only needed while the ranks open each other's segments, so
once all ranks are past that point each one unlinks its own name: the mappings stay valid, and
the kernel frees the memory when the last process exits, however it exits.
"""

from __future__ import annotations

import os
from pathlib import Path

SHM_DIR = Path("/dev/shm")
SEGMENT_PREFIX = "deepspeed_allreduce_buffer"


def own_segment(rank: int) -> Path:
    """The /dev/shm path of this rank's DeepSpeed allreduce buffer, named as DeepSpeed's shm op
    names it (ops/csrc/cpu/comm/shm.cpp: prefix, uid, MASTER_ADDR, MASTER_PORT, rank)."""
    addr = os.environ.get("MASTER_ADDR", "")
    port = os.environ.get("MASTER_PORT", "")
    return SHM_DIR / f"{SEGMENT_PREFIX}_{os.getuid()}_{addr}_{port}_{rank}"


def unlink_own_segment(rank: int) -> bool:
    """Remove this rank's segment name. Call only after a barrier that follows
    `deepspeed.init_distributed` on every rank, so no peer still has to open it by name.
    True if there was one (there is none on GPUs, across nodes or without the launcher)."""
    try:
        own_segment(rank).unlink()
    except FileNotFoundError:
        return False
    return True
