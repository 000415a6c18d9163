"""Retries never duplicate: a lost reply is answered from the applied-request record.

The server's test hook MNSP_TEST_DROP_REPLIES=N applies and commits the first
N writes but never sends their replies, as if the network lost them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from micro_namedtuple_sqlite_persister import Engine

from .conftest import StartServer
from .models import Marker
from .raw import names_stored

DROP_REPLIES_ENV = "MNSP_TEST_DROP_REPLIES"


def wait_until_stored(db_path: Path, name: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while name not in names_stored(db_path):
        assert time.monotonic() < deadline, f"{name} was never committed"
        time.sleep(0.02)


@pytest.mark.timeout(60)
def test_save_whose_reply_was_lost_is_stored_once_after_the_automatic_retry(
    start_server: StartServer,
    clients: Any,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Engine(str(db_path)) as local:
        local.ensure_table_created(Marker)
    monkeypatch.setenv(DROP_REPLIES_ENV, "1")
    server = start_server()
    engine = clients()

    saved = engine.save(Marker(None, "once", 1))  # the first write: reply lost

    assert names_stored(db_path) == ["once"]
    assert engine.find(Marker, saved.id) == saved
    assert server.read_log().count("write applied, reply dropped") == 1


@pytest.mark.timeout(60)
def test_retry_reaching_a_restarted_server_gets_the_original_id_not_a_new_row(
    start_server: StartServer,
    clients: Any,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = start_server()
    engine = clients()
    engine.ensure_table_created(Marker)
    engine.save(Marker(None, "earlier", 1))
    server.stop()
    monkeypatch.setenv(DROP_REPLIES_ENV, "1")
    server = start_server()
    result: list[Any] = []
    saving = threading.Thread(
        target=lambda: result.append(engine.save(Marker(None, "crossed", 2))),
        daemon=True,
    )
    saving.start()
    wait_until_stored(db_path, "crossed")

    server.kill()  # committed, reply never sent: as a crash right after commit
    monkeypatch.delenv(DROP_REPLIES_ENV)
    start_server()
    saving.join(30.0)

    assert not saving.is_alive()
    (saved,) = result
    assert sorted(names_stored(db_path)) == ["crossed", "earlier"]
    assert engine.find(Marker, saved.id) == saved
