"""Input acks in offset order: a record is acked only when it and every earlier one is done.

Records finish out of order: an invalid record is done at once, a valid one only when the
event-time aligner releases it and its state is written. Faust commits the highest run of
acked offsets it sees (and 0.15.3 can commit past a gap), so acks go out only as the finished
prefix of each partition.
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
