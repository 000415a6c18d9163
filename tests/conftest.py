"""Fixtures shared by the library tests: engines on real SQLite files."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from micro_namedtuple_sqlite_persister import Engine
from models import Athlete, League, Team


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "library.db"


@pytest.fixture
def engine(db_path: Path) -> Iterator[Engine]:
    """An Engine on a fresh WAL file, closed after the test."""
    with Engine(str(db_path)) as opened:
        yield opened


@pytest.fixture
def observer(db_path: Path, engine: Engine) -> Iterator[sqlite3.Connection]:
    """A second connection to the engine's file: it sees only committed writes."""
    connection = sqlite3.connect(db_path)
    yield connection
    connection.close()


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement the engine's connection runs from now on."""
    seen: list[str] = []
    engine.connection.set_trace_callback(seen.append)
    yield seen
    engine.connection.set_trace_callback(None)


class Sports(NamedTuple):
    big: League
    small: League
    red: Team
    ramble: Team
    blue: Team
    alice: Athlete
    bob: Athlete
    charlie: Athlete
    dave: Athlete


@pytest.fixture
def sports(engine: Engine) -> Sports:
    """The notebook's leagues, teams and athletes, saved and committed."""
    for model in (League, Team, Athlete):
        engine.ensure_table_created(model)
    big = engine.save(League(None, "Big"))
    small = engine.save(League(None, "Small"))
    red = engine.save(Team(None, "Red", big))
    ramble = engine.save(Team(None, "Ramble", small))
    blue = engine.save(Team(None, "Blue", big))
    alice = engine.save(Athlete(None, "Alice", red))
    bob = engine.save(Athlete(None, "Bob", red))
    charlie = engine.save(Athlete(None, "Charlie", ramble))
    dave = engine.save(Athlete(None, "Dave", blue))
    engine.commit()
    return Sports(big, small, red, ramble, blue, alice, bob, charlie, dave)
