"""Models shared by the library tests.

They live at module level so that their annotations (including the forward
references of self-related models) resolve, and so that instances of
`PickledRecipe` can be pickled by reference to this module.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple, Optional

from micro_namedtuple_sqlite_persister.adaptconvert import (
    register_adapt_convert,
    register_pickleable_adapt_convert,
)

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


class Team_NameOnly(NamedTuple):  # the part before `_` names the table
    id: int | None
    teamname: str


class Athlete_TeamAsIntId(NamedTuple):
    id: int | None
    name: str
    team: int


class Memo(NamedTuple):
    id: int | None
    note: str | None


# -- self-related rows -----------------------------------------------------------------


class Part(NamedTuple):
    """A bill-of-materials node, as in the notebook's giant BOM."""

    id: int | None
    name: str
    value: float
    child_a: Part | None
    child_b: Part | None


class Part_ChildIds(NamedTuple):
    id: int | None
    name: str
    value: float
    child_a: int | None
    child_b: int | None


class Tally(NamedTuple):
    id: int | None
    total: int
    previous: Tally | None


# -- SQL keywords as names -------------------------------------------------------------


class Order(NamedTuple):
    id: int | None
    group: str
    limit: int


class OrderLine(NamedTuple):
    id: int | None
    order: Order
    where: str


# -- every supported field type --------------------------------------------------------


class PhoneNumber:
    """A custom type stored through a registered adapt/convert pair."""

    def __init__(self, area_code: int, number: int) -> None:
        self.area_code = area_code
        self.number = number

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PhoneNumber) and (self.area_code, self.number) == (
            other.area_code,
            other.number,
        )

    def __repr__(self) -> str:
        return f"PhoneNumber({self.area_code}, {self.number})"


def adapt_phone_number(phone: PhoneNumber) -> bytes:
    return f"({phone.area_code}) {phone.number}".encode()


def convert_phone_number(data: bytes) -> PhoneNumber:
    area_code, number = data.decode().split(" ", 1)
    return PhoneNumber(int(area_code.strip("()")), int(number))


class PickledRecipe:
    """A plain picklable class, stored through register_pickleable_adapt_convert."""

    def __init__(self, title: str, steps: list[str]) -> None:
        self.title = title
        self.steps = steps

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PickledRecipe) and vars(self) == vars(other)


register_adapt_convert(
    PhoneNumber, adapt_phone_number, convert_phone_number, overwrite=True
)
register_pickleable_adapt_convert(PickledRecipe)


class EveryType(NamedTuple):
    id: int | None
    text: str
    count: int
    ratio: float
    payload: bytes
    flag: bool
    day: dt.date
    moment: dt.datetime
    items: list
    mapping: dict
    phone: PhoneNumber
    recipe: PickledRecipe


class EveryOptionalType(NamedTuple):
    id: int | None
    text: str | None
    count: int | None
    ratio: float | None
    payload: bytes | None
    flag: bool | None
    day: dt.date | None
    moment: dt.datetime | None
    items: list | None
    mapping: dict | None
    phone: PhoneNumber | None
    recipe: Optional[PickledRecipe]  # noqa: UP007, UP045 - this spelling works too
    league: League | None


class Character(NamedTuple):
    id: int | None
    name: str
    stats: dict


class Character_RawStats(NamedTuple):
    id: int | None
    name: str
    stats: str


# -- table-less models -----------------------------------------------------------------


class TableInfo(NamedTuple):
    cid: int
    name: str
    type: str
    notnull: int
    dflt_value: Any
    pk: int


class RawValue(NamedTuple):
    value: Any


class LeagueCount(NamedTuple):
    leaguename: str
    teams: int
