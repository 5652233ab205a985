"""Registry lookups, suggestions and duplicate protection."""

from __future__ import annotations

import pytest

from ecgprobe.exceptions import ConfigError, UnknownNameError
from ecgprobe.registry import Registry


def test_register_get_list_and_suggest():
    reg: Registry[int] = Registry("widget")
    reg.add("alpha-one", 1, aliases=("a1",), family="greek")
    reg.add("beta", 2)
    assert reg.get("ALPHA-ONE") == 1 and reg.get("a1") == 1
    assert reg.list() == ["alpha-one", "beta"] and reg.list("al*") == ["alpha-one"]
    assert reg.entry("a1").info == {"family": "greek"}
    with pytest.raises(UnknownNameError, match=r"unknown widget 'alpha-on'; did you mean 'alpha-one'"):
        reg.get("alpha-on")
    with pytest.raises(KeyError):  # still a KeyError for callers that catch that
        reg.get("zzz")
    with pytest.raises(ConfigError, match="registered twice"):
        reg.add("beta", 3)
    with pytest.raises(ConfigError, match="registered twice"):
        reg.add("gamma", 3, aliases=("A1",))


def test_check_options_names_the_unknown_ones_with_close_matches():
    reg: Registry = Registry("widget")
    reg.add("maker", lambda root, n_records=1, seed=0: None)
    reg.check_options("maker", {"n_records": 2, "seed": 1}, reserved=("root",))
    with pytest.raises(
        ConfigError, match=r"unknown option\(s\) 'n_record' \(did you mean 'n_records'\?\), 'zz'"
    ) as err:
        reg.check_options("maker", {"n_record": 2, "zz": 0}, reserved=("root",))
    assert "for widget 'maker'; its options are: n_records, seed" in str(err.value)
    with pytest.raises(ConfigError, match="options are: n_records, seed"):  # reserved ones are not options
        reg.check_options("maker", {"root": "/x"}, reserved=("root",))


def _typed_maker(
    root: str, *, n_records: int = 1, folds: tuple[int, ...] = (9,), lazy: bool = False, kind: str = "a"
) -> None:
    """A registered callable with annotated options."""


def test_check_options_checks_and_converts_values_by_annotation():
    reg: Registry = Registry("widget")
    reg.add("typed", _typed_maker)
    assert reg.check_options("typed", {"n_records": 2, "folds": 8}, reserved=("root",)) == {
        "n_records": 2,
        "folds": (8,),
    }
    text = {"n_records": "3", "folds": "8,9", "lazy": "yes"}
    assert reg.check_options("typed", text, reserved=("root",), from_string=True) == {
        "n_records": 3,
        "folds": (8, 9),
        "lazy": True,
    }
    with pytest.raises(ConfigError, match=r"widget 'typed': n_records='3' is not valid; expected an integer"):
        reg.check_options("typed", {"n_records": "3"}, reserved=("root",))  # text only from the CLI
    with pytest.raises(
        ConfigError, match=r"widget 'typed': lazy='maybe' is not valid; expected true or false"
    ):
        reg.check_options("typed", {"lazy": "maybe"}, reserved=("root",), from_string=True)
