"""Trade records for relay-out: pages of a CoinAPI symbol's trades, newest first.

Pagination is by keyset on ``(time_exchange, uuid)``: the cursor names the last trade
of a page, so pages never skip or repeat a trade while new ones arrive.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from relay import caching, partitions
from relay.changes import AnswerCache
from relay.errors import BadRequest, NotFound
from relay.reads import Reads
from relay.sources.coinapi import store

CONCERN = "trades"
Cursor = tuple[datetime, uuid.UUID]


def encode_cursor(time_exchange: datetime, trade_uuid: uuid.UUID) -> str:
    """Make the opaque keyset cursor that resumes after this trade."""
    raw = f"{time_exchange.isoformat()}|{trade_uuid}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, name: str = "cursor") -> Cursor:
    """Read a cursor made by encode_cursor; BadRequest if it is not one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        time_text, uuid_text = base64.urlsafe_b64decode(padded).decode().split("|")
        when = datetime.fromisoformat(time_text)
        if when.tzinfo is None:
            raise ValueError("naive time")
        return when, uuid.UUID(uuid_text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest(f"Bad Request: invalid {name} parameter") from None


class Trades:
    """Pages of trades, each serialized once and cached until new trades are stored."""

    def __init__(self, reads: Reads, cache: AnswerCache):
        self._reads = reads
        self._cache = cache

    def page(
        self,
        symbol_id: str,
        *,
        start: datetime | None,
        end: datetime | None,
        after: Cursor | None,
        limit: int,
    ) -> bytes:
        """One page as the 200 body; NotFound for a symbol never relayed."""
        body = self._cache.get(
            CONCERN,
            ("records", symbol_id, start, end, after, limit),
            lambda: caching.ok_body(self._read(symbol_id, start, end, after, limit)),
        )
        if body is None:
            raise NotFound(f"Not Found: no records for symbol {symbol_id}")
        return body

    def _read(self, symbol_id, start, end, after, limit) -> dict | None:
        # One extra row tells whether another page follows: next_cursor is null exactly
        # on the last page.
        with self._reads.connection(CONCERN) as conn:
            symbol = store.symbol_pk(conn, symbol_id)
            if symbol is None:
                return None
            held = partitions.held_from(conn, store.TABLE)
            if held is not None and (
                (start is not None and start < held) or (end is not None and end <= held)
            ):
                when = held.strftime("%Y-%m-%dT%H:%M:%SZ")
                raise NotFound(
                    f"Not Found: trades before {when} are no longer held (RELAY_RETAIN_TRADES)",
                    data={"symbol": symbol_id, "held_from": held},
                )
            rows = store.records(conn, symbol, start=start, end=end, after=after, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "records": [
                {
                    "symbol": symbol_id,
                    "uuid": row[0],
                    "time_exchange": row[1],
                    "time_coinapi": row[2],
                    "price": row[3],
                    "size": row[4],
                    "taker_side": row[5],
                }
                for row in rows
            ],
            "next_cursor": encode_cursor(rows[-1][1], rows[-1][0]) if more else None,
        }
