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
