"""`LazyRow`: a related row that is fetched the first time it is used."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol


class RowSource(Protocol):
    """Anything that can find a row by model and id: `Engine` or the client."""

    def find(self, model: type, id: int, deep: bool = False) -> Any: ...


class LazyRow:
    """Stands in for the `model` row `id` until an attribute other than `id` is read.

    Then it loads the row through `source.find` once and delegates to it, so
    `athlete.team.league.name` works hop by hop. `id` never loads. It is not an
    instance of the model class: call `.load()` when you need the real row.
    """

    __slots__ = ("_source", "_model", "id", "_row")

    def __init__(self, source: RowSource, model: type, id: int) -> None:
        self._source = source
        self._model = model
        self.id = id
        self._row: Any = None

    def load(self) -> Any:
        """The real row, fetched on first call (RowNotFoundError if it is gone)."""
        if self._row is None:
            self._row = self._source.find(self._model, self.id)
        return self._row

    def __getattr__(self, name: str) -> Any:
        return getattr(self.load(), name)

    def __getitem__(self, index: Any) -> Any:
        return self.load()[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.load())

    def __len__(self) -> int:
        return len(self._model._fields)  # type: ignore[attr-defined]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyRow):
            return self._model is other._model and self.id == other.id
        return bool(self.load() == other)

    def __hash__(self) -> int:
        return hash(self.load())

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickling (e.g. returning a row from a multiprocessing worker) sends the
        # loaded row: the engine behind a lazy row cannot travel.
        return (_identity, (self.load(),))

    def __repr__(self) -> str:
        if self._row is not None:
            return repr(self._row)
        return f"<lazy {self._model.__name__} id={self.id}>"


def _identity(value: Any) -> Any:
    return value
