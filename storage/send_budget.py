"""The shared send schedule of a channel and sender on PostgreSQL: one row, moved forward atomically.

Each process reserves consecutive send slots with one `UPDATE … RETURNING` that computes from the
database server's clock, so the slots handed out to all processes together never come faster than the
configured interval, whatever the number of processes or machines and whatever their clocks say.
The row is a virtual-scheduling token bucket (GCRA): `next_at` is the first free slot; a reservation of
`count` slots starts at `max(next_at, now)` and moves `next_at` by `count` intervals. A slot not used
(the process stopped, its queue ran dry) is lost, never given twice: the rate may fall short, never over.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

_CREATE = text(
    "INSERT INTO send_budget (channel, sender, next_at) "
    "VALUES (:channel, :sender, extract(epoch FROM clock_timestamp())) ON CONFLICT DO NOTHING"
)
_RESERVE = text(
    "WITH clock AS (SELECT extract(epoch FROM clock_timestamp()) AS now) "
    "UPDATE send_budget SET next_at = greatest(send_budget.next_at, clock.now) + :span "
    "FROM clock WHERE channel = :channel AND sender = :sender "
    "RETURNING send_budget.next_at - :span, clock.now"
)


def ensure_budget(conn: Connection, *, channel: str, sender: str) -> None:
    """Create the row of a channel and sender if no process did yet."""
    conn.execute(_CREATE, {"channel": channel, "sender": sender})


def reserve_slots(
    conn: Connection, *, channel: str, sender: str, count: int, interval: float
) -> tuple[float, float]:
    """Reserve `count` slots `interval` seconds apart: the first slot and the server's time, epoch seconds."""
    first, now = conn.execute(
        _RESERVE, {"channel": channel, "sender": sender, "span": count * interval}
    ).one()
    return float(first), float(now)
