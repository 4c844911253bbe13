"""The named-query loader (conveyor.store.sql): tokens, and fragments shared across files."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.store import sql


def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **files: str) -> str:
    (tmp_path / "b").mkdir()
    for name, text in files.items():
        (tmp_path / "b" / f"{name}.sql").write_text(text)
    monkeypatch.setattr(sql, "SQL_DIR", tmp_path)
    return "b"


def test_a_fragment_serves_queries_in_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = backend(
        tmp_path,
        monkeypatch,
        a="-- fragment: tail\n-- what it is\nRETURNING {{publish}}\n\n"
        "-- name: one\n-- doc\nUPDATE t SET x = 1 {{tail}}\n",
        b="-- name: two\nDELETE FROM t {{tail}}\n",
    )
    q = sql.load(name, {**sql.TOKENS, "publish": "true"})
    assert q == {
        "one": "-- doc\nUPDATE t SET x = 1 RETURNING true",
        "two": "DELETE FROM t RETURNING true",
    }


@pytest.mark.parametrize(
    "text, error",
    [
        ("-- name: one\nSELECT {{nope}}\n", "one uses unknown token {{nope}}"),
        (
            "-- fragment: terminal\nx\n-- name: one\nSELECT 1\n",
            "fragment terminal is defined twice",
        ),
        ("-- name: one\nSELECT 1\n-- name: one\nSELECT 2\n", "query one is defined twice"),
        ("-- fragment: f\n-- only a comment\n-- name: one\nSELECT {{f}}\n", "f is empty"),
    ],
)
def test_load_errors_fail_at_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, error: str
) -> None:
    with pytest.raises(ValueError, match=error.replace("{", r"\{").replace("}", r"\}")):
        sql.load(backend(tmp_path, monkeypatch, a=text))
