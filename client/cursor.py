"""`RemoteCursor`: rows of a query run by the server, fetched page by page."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from micro_namedtuple_sqlite_persister.model import ModelMeta
from micro_namedtuple_sqlite_persister.persister import decode_checked

if TYPE_CHECKING:
    from .engine import RemoteEngine


class RemoteCursor:
    """fetchone / fetchmany / fetchall / iteration over model rows.

    The server sends at most a page of rows at a time (its --page-rows), so a
    loop over a huge result holds one page in memory on each side. An unfinished
    cursor is closed by `close()`, by garbage collection, or by the server after
    it sits idle for the server's --cursor-idle seconds.
    """

    arraysize = 100

    def __init__(
        self, engine: RemoteEngine, meta: ModelMeta, page: list[Any], is_deep: bool
    ) -> None:
        self._engine = engine
        self._meta = meta
        self._is_deep = is_deep
        self._cursor_id: str | None = None
        self._buffer: deque[Any] = deque()
        self._take(page)

    def _take(self, page: list[Any]) -> None:
        cursor_id, rows, related = page
        self._cursor_id = cursor_id
        if self._is_deep and rows:
            self._buffer.extend(
                self._engine.build_deep(self._meta, rows, related or {})
            )
        else:
            lazy = self._engine._lazy
            self._buffer.extend(decode_checked(self._meta, row, lazy) for row in rows)

    def _fill(self, wanted: int | None) -> None:
        """Fetch pages until `wanted` rows are buffered (all rows for None)."""
        while self._cursor_id is not None and (
            wanted is None or len(self._buffer) < wanted
        ):
            self._take(self._engine.fetch_page(self._cursor_id, None))

    def fetchone(self) -> Any:
        self._fill(1)
        return self._buffer.popleft() if self._buffer else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        count = size or self.arraysize
        self._fill(count)
        return [self._buffer.popleft() for _ in range(min(count, len(self._buffer)))]

    def fetchall(self) -> list[Any]:
        self._fill(None)
        rows = list(self._buffer)
        self._buffer.clear()
        return rows

    def __iter__(self) -> Iterator[Any]:
        while True:
            self._fill(1)
            if not self._buffer:
                return
            yield self._buffer.popleft()

    def close(self) -> None:
        """Release the server-side cursor, if the result was not read to the end."""
        if self._cursor_id is not None:
            cursor_id, self._cursor_id = self._cursor_id, None
            self._engine.close_cursor(cursor_id)
        self._buffer.clear()
