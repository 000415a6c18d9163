"""Models and worker functions for the service tests.

They live in an importable module (`service.models`, with `tests/` on sys.path,
which spawn-started children inherit) so that worker processes started by fork
or spawn can unpickle the models and the functions they run.
"""

from __future__ import annotations

from typing import NamedTuple

from micro_namedtuple_sqlite_persister.adaptconvert import register_adapt_convert
from micro_namedtuple_sqlite_persister.client import RemoteEngine, connect

# -- the notebook's sports schema ------------------------------------------------------


class League(NamedTuple):
    id: int | None
    leaguename: str


class Team(NamedTuple):
    id: int | None
    teamname: str
    league: League


class Athlete(NamedTuple):
    id: int | None
    name: str
    team: Team


class Team_NameOnly(NamedTuple):  # the same table as Team, another shape
    id: int | None
    teamname: str


class Counter(NamedTuple):
    id: int | None
    count: int


# -- deep structures -------------------------------------------------------------------


class Part(NamedTuple):
    """A node of a binary bill of materials, as in the notebook."""

    id: int | None
    name: str
    value: float
    child_a: Part | None
    child_b: Part | None


class Link(NamedTuple):
    """A node of a linear chain."""

    id: int | None
    position: int
    next: Link | None


def build_tree(depth: int) -> Part:
    """A complete binary tree of 2**depth - 1 parts, built without recursion."""
    level = [
        Part(None, f"leaf{i}", float(i), None, None) for i in range(2 ** (depth - 1))
    ]
    while len(level) > 1:
        pairs = zip(level[::2], level[1::2], strict=True)
        level = [Part(None, "node", 0.0, left, right) for left, right in pairs]
    return level[0]


def count_parts(root: Part) -> int:
    count, stack = 0, [root]
    while stack:
        part = stack.pop()
        count += 1
        stack.extend(child for child in (part.child_a, part.child_b) if child)
    return count


def build_chain(length: int) -> Link:
    """Link 0 -> Link 1 -> ... -> Link length-1."""
    link = None
    for position in reversed(range(length)):
        link = Link(None, position, link)
    assert link is not None
    return link


def chain_positions(head: Link) -> list[int]:
    positions = []
    link: Link | None = head
    while link is not None:
        positions.append(link.position)
        link = link.next
    return positions


# -- a custom type only the test knows -------------------------------------------------


class Colour:
    """A type the server has never heard of, stored through adapt/convert."""

    def __init__(self, red: int, green: int, blue: int) -> None:
        self.rgb = (red, green, blue)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Colour) and self.rgb == other.rgb

    def __repr__(self) -> str:
        return f"Colour{self.rgb}"


def adapt_colour(colour: Colour) -> bytes:
    return bytes(colour.rgb)


def convert_colour(data: bytes) -> Colour:
    return Colour(*data)


register_adapt_convert(Colour, adapt_colour, convert_colour, overwrite=True)


class Paint(NamedTuple):
    id: int | None
    name: str
    colour: Colour


# -- worker functions (run in child processes) -----------------------------------------

_engines: dict[str, RemoteEngine] = {}


def worker_engine(address: str) -> RemoteEngine:
    """One client per process and address, created on first use."""
    if address not in _engines:
        _engines[address] = connect(address, timeout=30.0)
    return _engines[address]


def save_counters(address: str, worker: int, count: int) -> list[int]:
    """Save Counter rows numbered worker * 1_000_000 + i; return their ids."""
    return save_counters_with(worker_engine(address), worker, count)


def save_counters_with(engine: RemoteEngine, worker: int, count: int) -> list[int]:
    """As save_counters, with the engine passed in (pickled to the child)."""
    base = worker * 1_000_000
    return [engine.save(Counter(None, base + i)).id for i in range(count)]


def save_counter_pair(args: tuple[str, int, int]) -> list[int]:
    """save_counters for Pool.map, which passes one argument."""
    return save_counters(*args)
