"""Log lines of a bar's path handed to the handlers after its prediction row is written.

Kedro's logging sends every record through the rich console handler (and the log file)
as it is made: a few milliseconds a line. On the way from a bar's completion to its row
(the stored-minute line, "bar completed", inference's prediction line) that is latency for
nothing, so the records are held and handed over, in order and unchanged, once the row is
written.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class _Holder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# One holder for the whole process: blocks of several instruments' loops may interleave
# across awaits; the records go out when the last of them ends.
_holder = _Holder()
_state: dict[str, list] = {"handlers": [], "depth": [0]}


@contextlib.contextmanager
def held_logs() -> Iterator[None]:
    """The root logger's records in this block reach its handlers when the block ends."""
    root = logging.getLogger()
    depth = _state["depth"]
    if depth[0] == 0:
        if not root.handlers:  # Python's last-resort handler then prints warnings at once
            yield
            return
        _state["handlers"] = root.handlers[:]
        root.handlers = [_holder]
    depth[0] += 1
    try:
        yield
    finally:
        depth[0] -= 1
        if depth[0] == 0:
            handlers = _state["handlers"]
            root.handlers = handlers
            records, _holder.records = _holder.records, []
            for record in records:
                for handler in handlers:
                    if record.levelno >= handler.level:
                        handler.handle(record)
