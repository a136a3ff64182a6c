"""The model server's background threads yield the CPU to the event loop that answers requests.

The feedback writer and the shadow's mirror run beside the event loop in one process. Under a flood of labels
they compete with it for the same cores, and every millisecond the scheduler gives them is a millisecond a
waiting request is not answered. Each lowers its own thread's priority (Linux schedules threads as tasks, so
`setpriority` on the thread id touches only that thread): labels are written later, and a labelling client
waits, which slows a flood down. The request-log writer and the compactor keep theirs: the log's entries are
lost if a worker dies before they are written, and deleting must keep up with any flood or the disk bound
would not hold.

Niceness decides who gets a core, not who holds the GIL: a background thread that has it keeps it until the
interpreter's switch interval (5 ms by default) asks it to let go, and a request waits that long behind it. The
server shortens that interval, so a waiting request gets the GIL back within a fraction of a millisecond.
"""

from __future__ import annotations

import os
import sys
import threading

BACKGROUND_NICENESS = 10
SERVER_SWITCH_INTERVAL_S = 0.0005  # the longest a request waits for the GIL a background thread holds


def lower_this_thread(niceness: int = BACKGROUND_NICENESS) -> None:
    """Lower the calling thread's scheduling priority; a no-op where the platform cannot (not Linux)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):
        pass


def favour_the_event_loop(interval: float = SERVER_SWITCH_INTERVAL_S) -> None:
    """Make threads holding the GIL hand it back to a waiting event loop after `interval` seconds."""
    sys.setswitchinterval(interval)
