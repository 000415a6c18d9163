"""The user's notebook: its imports as written, and the seed script run embedded."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import micro_namedtuple_sqlite_persister as package
from micro_namedtuple_sqlite_persister import Engine
from models import Athlete, League, Team

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_SEED = REPO_ROOT.parent / "shared" / "seed" / "run_seed.py"
SEED_TIMEOUT_S = 240


def test_notebook_imports_are_the_package_public_names() -> None:
    from micro_namedtuple_sqlite_persister import adaptconvert, persister, query

    assert persister.Engine is package.Engine
    assert query.select is package.select
    for name in (
        "AdaptConvertTypeAlreadyRegistered",
        "register_adapt_convert",
        "register_pickleable_adapt_convert",
        "register_standard_adaptconverters",
    ):
        assert getattr(adaptconvert, name) is getattr(package, name)


def test_register_standard_adaptconverters_again_keeps_types_working(
    engine: Engine,
) -> None:
    from micro_namedtuple_sqlite_persister.adaptconvert import (
        register_standard_adaptconverters,
    )

    register_standard_adaptconverters()
    register_standard_adaptconverters()
    engine.ensure_table_created(Stamp)
    saved = engine.save(Stamp(None, dt.date(2024, 1, 31), True))

    assert engine.find(Stamp, saved.id) == Stamp(saved.id, dt.date(2024, 1, 31), True)


def test_meta_maps_each_used_model_to_its_table(engine: Engine, sports) -> None:
    from micro_namedtuple_sqlite_persister.model import _meta

    engine.find(Athlete, sports.alice.id, deep=True)

    assert {_meta[model].table for model in (League, Team, Athlete)} == {
        "League",
        "Team",
        "Athlete",
    }
    assert _meta[Athlete].field_names == ("id", "name", "team")


def test_seed_script_runs_embedded_and_exits_zero() -> None:
    assert RUN_SEED.is_file(), f"seed runner not found at {RUN_SEED}"

    result = subprocess.run(
        [sys.executable, str(RUN_SEED), "embedded"],
        capture_output=True,
        text=True,
        timeout=SEED_TIMEOUT_S,
        cwd=REPO_ROOT,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


class Stamp(NamedTuple):
    id: int | None
    day: dt.date
    is_checked: bool
