"""Input records done in offset order: a record counts only when every earlier one is done.

Records finish out of order: an invalid record is done at once, a valid one only when the
event-time aligner releases it and its state is written. The committed offset of a partition
may only move past records that are done, so only the finished prefix of each partition is
handed on (to agents/commits.py).
"""

from __future__ import annotations

from typing import Any

TP = tuple[str, int]


class AckLedger:
    __slots__ = ("_open",)

    def __init__(self) -> None:
        # Per partition, in admission (= offset) order: offset -> [event, finished].
        self._open: dict[TP, dict[int, list[Any]]] = {}

    def __len__(self) -> int:
        return sum(len(slots) for slots in self._open.values())

    def open(self, event: Any) -> None:
        """Track a just-admitted record (records of a partition arrive in offset order)."""
        msg = event.message
        self._open.setdefault((msg.topic, msg.partition), {})[msg.offset] = [event, False]

    def finish(self, event: Any) -> None:
        msg = event.message
        slot = self._open.get((msg.topic, msg.partition), {}).get(msg.offset)
        if slot is not None:
            slot[1] = True

    def ready(self) -> list[Any]:
        """Pop and return the finished prefix of every partition, in offset order."""
        out = []
        for slots in self._open.values():
            while slots:
                offset = next(iter(slots))
                event, finished = slots[offset]
                if not finished:
                    break
                del slots[offset]
                out.append(event)
        return out

    def clear(self) -> None:
        """Forget everything (after a rebalance the consumer delivers it again)."""
        self._open.clear()
