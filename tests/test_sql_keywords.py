"""Tables and fields named after SQL keywords (`Order`, `group`) work everywhere."""

from __future__ import annotations

import pytest
from micro_namedtuple_sqlite_persister import Engine, select
from models import Order, OrderLine


@pytest.fixture
def orders(engine: Engine) -> Engine:
    engine.ensure_table_created(Order)
    engine.ensure_table_created(OrderLine)
    return engine


def test_keyword_named_table_saves_and_finds(orders: Engine) -> None:
    saved = orders.save(Order(None, "retail", 10))

    assert orders.find(Order, saved.id) == Order(saved.id, "retail", 10)


def test_keyword_named_field_updates_and_is_found_by(orders: Engine) -> None:
    saved = orders.save(Order(None, "retail", 10))

    orders.save(saved._replace(group="wholesale", limit=99))

    assert orders.find_by(Order, group="wholesale", limit=99).id == saved.id
    assert orders.find_by(Order, group="retail") is None


def test_keyword_named_table_is_deleted_from(orders: Engine) -> None:
    saved = orders.save(Order(None, "retail", 10))

    orders.delete(saved)

    assert orders.find_by(Order, group="retail") is None


def test_keyword_named_related_field_saves_deep_and_loads_deep(
    orders: Engine,
) -> None:
    line = orders.save(OrderLine(None, Order(None, "retail", 1), "shelf"), deep=True)

    loaded = orders.find(OrderLine, line.id, deep=True)

    assert loaded.order == line.order
    assert loaded.where == "shelf"


def test_select_path_through_keyword_names_filters(orders: Engine) -> None:
    orders.save(OrderLine(None, Order(None, "retail", 1), "shelf"), deep=True)
    orders.save(OrderLine(None, Order(None, "bulk", 2), "dock"), deep=True)

    @select(OrderLine)
    def in_group(group: str):
        return f"WHERE {OrderLine.order.group} = {group} ORDER BY {OrderLine.where}"

    lines = orders.query(*in_group("bulk")).fetchall()

    assert [line.where for line in lines] == ["dock"]
    assert lines[0].order.limit == 2
