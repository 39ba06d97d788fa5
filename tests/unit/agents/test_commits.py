"""OffsetCommitter: commits the offset after the last finished record, at most once a second."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from fake_records import Ev, Msg
from faust.types import TP

from churnstream.agents.commits import OffsetCommitter


@dataclass
class RecordingConsumer:
    """Stands in for `faust_private.commit_offsets`: records what would be committed."""

    commits: list[dict[TP, int]] = field(default_factory=list)
    fail: bool = False

    async def commit_offsets(self, offsets: Mapping[TP, int]) -> bool:
        if self.fail:
            raise RuntimeError("rebalance in progress")
        self.commits.append(dict(offsets))
        return True


def ev(partition: int, offset: int) -> Ev:
    return Ev(Msg("logins", partition, offset))


def test_commits_the_offset_after_the_last_finished_record_per_partition() -> None:
    consumer = RecordingConsumer()
    committer = OffsetCommitter(consumer.commit_offsets, interval_s=0.0)
    committer.done([ev(0, 4), ev(0, 5), ev(1, 9)])
    asyncio.run(committer.commit())
    assert consumer.commits == [{TP("logins", 0): 6, TP("logins", 1): 10}]
    asyncio.run(committer.commit())  # nothing new: nothing sent
    assert len(consumer.commits) == 1


def test_commits_at_most_once_per_interval_unless_forced() -> None:
    consumer = RecordingConsumer()
    committer = OffsetCommitter(consumer.commit_offsets, interval_s=3600.0)
    committer.done([ev(0, 1)])
    asyncio.run(committer.commit())
    committer.done([ev(0, 2)])
    asyncio.run(committer.commit())
    assert consumer.commits == [{TP("logins", 0): 2}]
    asyncio.run(committer.commit(force=True))
    assert consumer.commits[-1] == {TP("logins", 0): 3}


def test_a_failed_commit_is_not_fatal_and_forget_drops_pending_offsets() -> None:
    consumer = RecordingConsumer(fail=True)
    committer = OffsetCommitter(consumer.commit_offsets, interval_s=0.0)
    committer.done([ev(0, 1)])
    asyncio.run(committer.commit())  # logged; the records are processed again later
    consumer.fail = False
    committer.done([ev(0, 7)])
    committer.forget()
    asyncio.run(committer.commit())
    assert consumer.commits == []
