"""`__main__.py` does three things: read the config, build the components, export outputs."""

from __future__ import annotations

import ast

from tests.sites import ROOT

ALLOWED = (ast.Import, ast.ImportFrom, ast.Assign, ast.Expr)


def test_main_has_no_logic() -> None:
    tree = ast.parse((ROOT / "__main__.py").read_text())
    body = tree.body
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant), "docstring"
    for node in body[1:]:
        assert isinstance(node, ALLOWED), f"line {node.lineno}: {type(node).__name__}"
        for inner in ast.walk(node):
            assert not isinstance(
                inner,
                ast.If
                | ast.For
                | ast.While
                | ast.Lambda
                | ast.comprehension
                | ast.IfExp
                | ast.BoolOp
                | ast.FunctionDef
                | ast.Try
                | ast.Subscript,
            ), f"line {getattr(inner, 'lineno', node.lineno)}: {type(inner).__name__}"
    calls = [n for n in body[1:] if isinstance(n, ast.Expr)]
    assert calls, "exports"
    for expr in calls:
        call = expr.value
        assert isinstance(call, ast.Call) and ast.unparse(call.func) == "pulumi.export", (
            f"line {expr.lineno}: only pulumi.export(...) calls stand alone"
        )
    first = next(n for n in body if isinstance(n, ast.Assign))
    assert ast.unparse(first.value) == "load_site_config()", "the config is read first, once"
    assert sum("load_site_config()" in ast.unparse(n) for n in body) == 1
