"""One set of identifier rules; names become paths only through ``path_in``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from driftloop.core import ids


def test_rules_accept_what_the_loop_uses() -> None:
    for alias in ("transit-qa", "gate-0123456789abcdef", "a", "A.b_c-9"):
        ids.ALIAS.check(alias)
    for version in ("v0", "r-0123456789ab"):
        ids.VERSION.check(version)
    ids.TRIGGER_ID.check("0123456789abcdef0123456789abcdef")
    ids.REQUEST_ID.check("drift-model-12:3.x")


@pytest.mark.parametrize("rule,value", [
    (ids.ALIAS, ""), (ids.ALIAS, "."), (ids.ALIAS, ".."), (ids.ALIAS, "a/b"), (ids.ALIAS, "x" * 65),
    (ids.VERSION, "../../"), (ids.TRIGGER_ID, "../../../"), (ids.TRIGGER_ID, "a.b"), (ids.TRIGGER_ID, "x" * 65),
    (ids.REQUEST_ID, "a\x00b"), (ids.MODEL, "m\n"),
])
def test_rules_refuse(rule: ids.Rule, value: str) -> None:
    with pytest.raises(ids.InvalidIdentifier) as err:
        rule.check(value)
    assert len(str(err.value)) < 200 and not rule.ok(value)


def test_path_in_refuses_traversal_and_symlink_escapes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    assert ids.path_in(root, "alias", "v1") == root.resolve() / "alias" / "v1"
    for names in (("..",), (".",), ("a/../..",), ("/",), ("",), ("a", "..")):
        with pytest.raises(ids.InvalidIdentifier):
            ids.path_in(root, *names)
    os.symlink(tmp_path, root / "out")
    with pytest.raises(ids.InvalidIdentifier, match="outside"):
        ids.path_in(root, "out", "x")


def test_error_messages_show_a_bounded_prefix_only() -> None:
    with pytest.raises(ids.InvalidIdentifier) as err:
        ids.REQUEST_ID.check("bad id " + "x" * 100)
    assert "xxxx" * 10 not in str(err.value)
