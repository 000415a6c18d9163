"""`select(Model)`: SELECT statements whose joins follow field paths.

    M, sql = select(Athlete)                      # every Athlete

    @select(Athlete)
    def in_league(league: str):
        return f"WHERE {Athlete.team.league.leaguename} = {league}"

    M, sql, params = in_league("Big")

The decorated function never runs. Its source is parsed: each `{Model.a.b.c}` in
its one f-string becomes a column (`"Athlete.team.league"."leaguename"`) with the
joins the path needs, each join once; each `{parameter}` becomes `:parameter`.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

from .errors import InvalidQueryError
from .model import FieldKind, ModelMeta, get_meta
from .spec import quote


class Select(tuple):  # type: ignore[type-arg]
    """`(Model, sql)` that is also a decorator adding a WHERE/ORDER/... clause."""

    def __new__(cls, model: type, sql: str) -> Select:
        return super().__new__(cls, (model, sql))

    def __call__(self, function: Callable[..., Any]) -> Callable[..., tuple[Any, ...]]:
        return _decorate(self[0], function)


def select(model: type) -> Select:
    """All rows of `model`'s table, as `(model, sql)`; also a decorator (see module)."""
    meta = get_meta(model)
    meta.require_table()
    return Select(model, _select_sql(meta, ""))


def _select_sql(meta: ModelMeta, clause: str, joins: str = "") -> str:
    root = quote(meta.name)
    columns = ", ".join(f"{root}.{quote(name)}" for name in meta.field_names)
    sql = f"SELECT {columns} FROM {quote(meta.table)} AS {root}{joins}"
    return f"{sql} {clause}" if clause else sql


def _decorate(model: type, function: Callable[..., Any]) -> Callable[..., Any]:
    meta = get_meta(model)
    template = _fstring_of(function)
    signature = inspect.signature(function)
    joins: dict[str, str] = {}
    used_params: set[str] = set()
    parts = []
    for piece in template.values:
        if isinstance(piece, ast.Constant):
            parts.append(str(piece.value))
        elif isinstance(piece, ast.FormattedValue):
            parts.append(
                _expression_sql(meta, piece.value, signature, joins, used_params)
            )
        else:  # pragma: no cover - f-string bodies hold only these two node kinds
            raise InvalidQueryError(f"unexpected f-string part in {function.__name__}")
    unused = set(signature.parameters) - used_params
    if unused:
        raise InvalidQueryError(
            f"{function.__name__}: parameter(s) {', '.join(sorted(unused))} are not "
            "used in the query; use each as {name} in the f-string, or remove it."
        )
    sql = _select_sql(meta, "".join(parts), "".join(joins.values()))
    if not signature.parameters:
        return lambda: (model, sql)

    def bound(*args: Any, **kwargs: Any) -> tuple[Any, str, dict[str, Any]]:
        try:
            arguments = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidQueryError(f"{function.__name__}{signature}: {exc}") from exc
        arguments.apply_defaults()
        return model, sql, dict(arguments.arguments)

    bound.__name__ = function.__name__
    bound.__doc__ = function.__doc__
    return bound


def _fstring_of(function: Callable[..., Any]) -> ast.JoinedStr:
    name = getattr(function, "__name__", repr(function))
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError) as exc:
        raise InvalidQueryError(
            f"cannot read the source of {name}, so select cannot build its query "
            "(functions typed at an interactive prompt or made by exec have none). "
            "Define it in a file, or pass SQL to engine.query directly."
        ) from exc
    try:
        definition = ast.parse(source).body[0]
    except SyntaxError:
        definition = None
    if not isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef):
        raise InvalidQueryError(
            f"select decorates a function defined with def, not {name}; write "
            '`@select(Model)` above `def name(...): return f"WHERE ..."`.'
        )
    body = definition.body
    if len(body) > 1 and _is_docstring(body[0]):
        body = body[1:]
    if len(body) == 1 and isinstance(body[0], ast.Return | ast.Expr):
        value = body[0].value
        if isinstance(value, ast.JoinedStr):
            return value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return ast.JoinedStr(values=[value])
    raise InvalidQueryError(
        f"{name} must consist of one f-string (returned or not), such as "
        'f"WHERE {Model.field} = {param}".'
    )


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _expression_sql(
    meta: ModelMeta,
    expression: ast.expr,
    signature: inspect.Signature,
    joins: dict[str, str],
    used_params: set[str],
) -> str:
    """SQL for one `{...}`: a parameter placeholder or a joined column."""
    if isinstance(expression, ast.Name) and expression.id in signature.parameters:
        used_params.add(expression.id)
        return f":{expression.id}"
    path = _attribute_path(expression)
    if path is None or len(path) < 2:
        shown = ast.unparse(expression)
        raise InvalidQueryError(
            f"{{{shown}}} is neither a parameter of the function "
            f"({', '.join(signature.parameters) or 'none'}) nor a field path "
            f"starting at {meta.name}, such as {{{meta.name}.{meta.field_names[-1]}}}."
        )
    if path[0] != meta.name:
        raise InvalidQueryError(
            f"field path {'.'.join(path)} must start at the selected model "
            f"{meta.name}, e.g. {meta.name}.{'.'.join(path[1:])}."
        )
    return _column_sql(meta, path, joins)


def _attribute_path(expression: ast.expr) -> list[str] | None:
    names = []
    while isinstance(expression, ast.Attribute):
        names.append(expression.attr)
        expression = expression.value
    if not isinstance(expression, ast.Name):
        return None
    names.append(expression.id)
    return names[::-1]


def _column_sql(meta: ModelMeta, path: list[str], joins: dict[str, str]) -> str:
    """`"alias"."column"` for a path, adding a LEFT JOIN for each related hop."""
    current, alias = meta, meta.name
    for depth, name in enumerate(path[1:], start=1):
        field = current.field(name)
        if field is None:
            raise InvalidQueryError(
                f"{'.'.join(path)}: {current.name} has no field {name!r} "
                f"(fields: {', '.join(current.field_names)})."
            )
        is_last = depth == len(path) - 1
        if is_last:
            return f"{quote(alias)}.{quote(name)}"
        if field.kind is not FieldKind.RELATED or field.related is None:
            raise InvalidQueryError(
                f"{'.'.join(path)}: {current.name}.{name} is not a related model, "
                "so the path cannot go further."
            )
        child_alias = f"{alias}.{name}"
        target = get_meta(field.related)
        joins.setdefault(
            child_alias,
            f" LEFT JOIN {quote(target.table)} AS {quote(child_alias)}"
            f' ON {quote(child_alias)}."id" = {quote(alias)}.{quote(name)}',
        )
        current, alias = target, child_alias
    raise AssertionError("unreachable: paths have at least two parts")
