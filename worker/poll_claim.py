"""How many remote tasks one poll tick claims: what is due, bounded by what the workers
take.

A claim leases its members (``HEADSWAP_POLL_LEASE_SECONDS``) and sends them as
``poll_batch`` messages onto ``headswap.poll``, the queue ``poll_due`` itself (and the
wake-ups and callback retries of the tick) waits in. A fixed 1,000 a tick fell behind
silently when more were due (100,000 pending tasks at a 60 s interval need 3,333 a 2 s
tick), and claiming everything that is due would flood that queue when the workers are
slower than the backlog: members would wait there past their lease (and be claimed
twice), and the next tick would wait behind them.

So a tick tops the queue up to about **two ticks of what the workers took** since the
previous tick: ``taken = waiting after the previous fan-out - waiting now`` (messages;
a late tick's count is scaled back to one interval), the target depth is
``2 * taken`` batches — never below ``FLOOR_BATCHES`` batches (1,000 members: the old fixed
claim, so a cold start or a tick after an idle spell claims at least that), never above
``HEADSWAP_POLL_MAX_CLAIM_PER_TICK`` — and the claim is that target minus what still
waits. Workers that keep up empty the queue every tick, so the limit doubles each tick
until it covers what is due; workers that are behind get two ticks of their own pace,
and the rest stays due in the schedule (the claim takes the most overdue first), counted
by ``headswap_poll_due_remote_tasks`` and seen as ``headswap_poll_lag_seconds``. Nothing
is lost: an unclaimed member is claimed by a later tick.
"""

from __future__ import annotations

#: The least a tick may claim, in batches (the fixed claim before this bound).
FLOOR_BATCHES = 20
#: Queue depth a tick aims at, in ticks of what the workers took.
HEADROOM_TICKS = 2.0
#: One claim script call takes at most this many batches (a short Lua call each).
CHUNK_BATCHES = 20


def claim_limit(*, waiting: int, previous: tuple[int, float] | None, now: float,
                tick: float, batch: int, cap: int) -> int:  # fmt: skip
    """Members this tick may claim.

    ``waiting``: messages in ``headswap.poll`` now; ``previous``: ``(messages waiting right
    after the previous fan-out, its server time)`` or None; ``now``: server time; ``tick``:
    ``HEADSWAP_POLL_TICK_SECONDS``; ``batch``: members per message; ``cap``:
    ``HEADSWAP_POLL_MAX_CLAIM_PER_TICK``.
    """
    target = FLOOR_BATCHES
    if previous is not None:
        left, at = previous
        taken = max(0, left - waiting)
        per_tick = taken * tick / max(tick, now - at)  # a late tick: its share of one interval
        target = max(FLOOR_BATCHES, round(HEADROOM_TICKS * per_tick))
    return max(0, min(cap, (target - waiting) * batch))
