"""Values SQLite cannot hold come back as the errors the in-process Engine raises.

2**64 - 1 is the largest int msgpack carries, so it reaches the server, which
must refuse it as SQLite's signed 64-bit integer cannot hold it. NaN binds as
NULL, which a NOT NULL column refuses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from micro_namedtuple_sqlite_persister import Engine
from micro_namedtuple_sqlite_persister.client import RemoteEngine
from micro_namedtuple_sqlite_persister.model import get_meta

from .conftest import StartServer
from .models import Measure
from .raw import call, table_counts

BEYOND_INT64 = 2**64 - 1
NAN = float("nan")
ANSWER_WITHIN_S = 2.0

Action = Callable[[Engine | RemoteEngine], Any]
CASES: dict[str, Action] = {
    "save_int_beyond_64_bits": lambda e: e.save(Measure(None, 1.0, BEYOND_INT64)),
    "update_id_beyond_64_bits": lambda e: e.save(Measure(BEYOND_INT64, 1.0, 1)),
    "save_many_int_beyond_64_bits": lambda e: e.save_many(
        [Measure(None, 1.0, 1), Measure(None, 1.0, BEYOND_INT64)]
    ),
    "deep_save_int_beyond_64_bits": lambda e: e.save(
        Measure(None, 1.0, BEYOND_INT64), deep=True
    ),
    "find_by_int_beyond_64_bits": lambda e: e.find_by(Measure, amount=BEYOND_INT64),
    "find_id_beyond_64_bits": lambda e: e.find(Measure, BEYOND_INT64),
    "delete_id_beyond_64_bits": lambda e: e.delete(Measure, BEYOND_INT64),
    "query_param_beyond_64_bits": lambda e: e.query(
        Measure, "SELECT * FROM Measure WHERE amount = ?", [BEYOND_INT64]
    ).fetchall(),
    "save_nan_into_not_null": lambda e: e.save(Measure(None, NAN, 1)),
    "save_many_nan_into_not_null": lambda e: e.save_many(
        [Measure(None, 1.0, 1), Measure(None, NAN, 2)]
    ),
    "sql_insert_nan_into_not_null": lambda e: e.query(
        Measure, "INSERT INTO Measure (value, amount) VALUES (?, 1)", [NAN]
    ),
}


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Engine]:
    with Engine(str(tmp_path / "local.db")) as engine:
        engine.ensure_table_created(Measure)
        engine.commit()
        yield engine


@pytest.fixture
def remote(start_server: StartServer, clients: Any) -> RemoteEngine:
    start_server()
    engine: RemoteEngine = clients(timeout=5.0)
    engine.ensure_table_created(Measure)
    return engine


def raised_by(engine: Engine | RemoteEngine, action: Action) -> BaseException:
    with pytest.raises(Exception) as raised:
        action(engine)
    return raised.value


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CASES)
def test_unstorable_value_raises_the_engine_error_promptly(
    case: str, local: Engine, remote: RemoteEngine, db_path: Path
) -> None:
    expected = raised_by(local, CASES[case])
    started = time.monotonic()

    error = raised_by(remote, CASES[case])

    assert time.monotonic() - started < ANSWER_WITHIN_S
    assert (type(error), str(error)) == (type(expected), str(expected))
    assert table_counts(db_path)["Measure"] == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "values", [[1.0, BEYOND_INT64], [NAN, 1]], ids=["int_beyond_64_bits", "nan"]
)
def test_raw_frame_with_unstorable_value_gets_the_engine_error(
    values: list[Any],
    local: Engine,
    remote: RemoteEngine,
    raw_socket: Callable[[], zmq.Socket[Any]],
    db_path: Path,
) -> None:
    expected = raised_by(local, lambda e: e.save(Measure(None, *values)))
    key = get_meta(Measure).spec.key

    is_ok, payload = call(raw_socket(), "save", [key, None, values], ANSWER_WITHIN_S)

    assert not is_ok
    assert payload == [type(expected).__name__, str(expected)]
    assert table_counts(db_path)["Measure"] == 0
