"""The help a user reads: complete sentences, no markup, the right defaults, no internal encoders."""

from __future__ import annotations

import re

import pytest

from ecgprobe.cli import main


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    "cmd",
    [
        "demo",
        "datasets",
        "info",
        "encoders",
        "probe",
        "scarcity",
        "report",
        "compare",
        "run",
        "cka",
        "umap",
        "extract",
        "attribute",
    ],
)
def test_every_command_has_a_description_without_markup(cmd, capsys):
    text = _help(capsys, cmd)
    assert "``" not in text and ":func:" not in text, text
    usage_end = text.index("\n\n")
    description = text[usage_end:].split("options:")[0].strip()
    assert description and description.rstrip()[-1] in ".)", (cmd, description[-80:])  # ends a sentence


def test_compare_lists_its_own_default_analyses(capsys):
    from ecgprobe._defaults import COMPARE_ANALYSES, MODEL_ANALYSES

    compare = re.sub(r"\s+", " ", _help(capsys, "compare"))
    report = re.sub(r"\s+", " ", _help(capsys, "report"))
    assert ", ".join(COMPARE_ANALYSES) in compare and ", ".join(MODEL_ANALYSES) in report


def test_defaults_are_shown(capsys):
    text = re.sub(r"\s+", " ", _help(capsys, "probe"))
    assert "probe(s) to run (default linear)" in text and "(default: the analyzer's" in text


def test_datasets_listing_has_no_rst_and_encoders_hide_the_test_encoder(capsys):
    assert main(["datasets"]) == 0
    assert "``" not in capsys.readouterr().out
    assert main(["encoders"]) == 0
    listing = capsys.readouterr().out
    assert "tiny-test" not in listing
    from ecgprobe.cli.common import plain
    from ecgprobe.cli.encoders import encoder_rows

    flat = " ".join(listing.split())
    for row in encoder_rows():  # every checkpoint description in full, wrapped but not cut
        assert " ".join(plain(str(row["checkpoint"])).split()) in flat, row["name"]
    assert main(["encoders", "--all"]) == 0
    assert "tiny-test" in capsys.readouterr().out
