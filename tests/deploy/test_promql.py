"""The PromQL helpers of tests/deploy/promql.py (pure functions; no tools needed). Operands come back
as promql-parser prints them, so the expected ones are written as PromQL and printed the same way."""

from __future__ import annotations

import promql_parser
import pytest

from tests.deploy.promql import all_expressions, data_operands, is_scalar_literal, metric_names, render


@pytest.mark.parametrize(("expr", "operands"), [
    ("up", ["up"]),
    ("sum(rate(x_total[5m]))", ["sum(rate(x_total[5m]))"]),
    ("max by (a) (x) >= 2", ["max by (a) (x)"]),
    ("(x)", ["x"]),
    ("2 < x", ["x"]),
    ("x > bool 0.5", ["x"]),
    ("x > 1e3", ["x"]),
    # arithmetic is what a panel shows: kept whole
    ("time() - max(x)", ["time() - max(x)"]),
    ("(a / b) > 0.05", ["a / b"]),
    ("(a) / (b)", ["(a) / (b)"]),
    # both sides of a vector comparison; the matching modifiers go
    ("max by (m) (r) > on (m) group_left (k) max by (m) (t)", ["max by (m) (r)", "max by (m) (t)"]),
    ("a == ignoring (x) b", ["a", "b"]),
    # set operators bind looser than comparisons, `or` loosest
    ("(a > on (m) b) and on (m) c >= 1", ["a", "b", "c"]),
    ("a > 0 or b > 0", ["a", "b"]),
    ("a > 0 and b > 0 or c", ["a", "b", "c"]),
    ("a unless b", ["a"]),
    ("a > 1 unless on (x) b", ["a"]),
    ("sum(a unless a offset 15m) > 0", ["sum(a unless a offset 15m)"]),
    ("absent(up{job=\"x\"})", ['up{job="x"}']),
    ("absent_over_time(up{job=\"x\"}[5m])", ['up{job="x"}']),
    # operators inside strings, braces and brackets are not operators
    ('x{code=~"a|b", le!="1"} > 3', ['x{code=~"a|b", le!="1"}']),
    ('x{path="a > b or c"}', ['x{path="a > b or c"}']),
    # a word that contains an operator's name is not one
    ("sum by (origin) (score_order) < 2", ["sum by (origin) (score_order)"]),
])
def test_data_operands(expr, operands):
    assert data_operands(expr) == [str(promql_parser.parse(o)) for o in operands]


def test_operands_are_printed_as_promql():
    assert data_operands('max by (a) (x{b="c"}) > 2') == ['max by (a)(x{b="c"})']


@pytest.mark.parametrize(("expr", "scalar"), [("0.5", True), ("(2)", True), ("-1", True), ("x", False),
                                               ("1 + x", False)])
def test_is_scalar_literal(expr, scalar):
    assert is_scalar_literal(expr) is scalar


@pytest.mark.parametrize("expr", all_expressions(), ids=lambda e: f"{e.source}:{e.name}")
def test_every_shipped_expression_splits_into_operands_with_metrics(expr):
    """Each operand the live check evaluates still queries a driftloop metric, and together they use
    every metric of the expression except those only an `unless` removes."""
    operands = data_operands(render(expr.expr, {"adapter_alias": "a"}))
    assert operands
    for op in operands:
        assert metric_names(op), f"{expr.name}: operand {op!r} queries no driftloop_ metric"
    assert set().union(*(metric_names(op) for op in operands)) == metric_names(expr.expr)
