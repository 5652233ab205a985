"""The output helper (ecgprobe/outputs.py) and the commands that write through it: every declared
file is protected without --force, folders are checked writable before any work, operating-system
failures are one clear message (exit 1), and a failed write leaves the folder as it was."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest

import ecgprobe._io
from ecgprobe.cli import main
from ecgprobe.encoders.testing import TinyTestEncoder
from ecgprobe.exceptions import ConfigError, OutputError
from ecgprobe.outputs import STAGING_PREFIX, Output, describe_os_error, safe_name

DATA = ["--dataset", "synthetic", "-o", "n_records=80", "-o", "fs=100", "-o", "seed=3"]


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with the content of its files (None for folders)."""
    return {
        p.relative_to(root).as_posix(): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def emb_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("emb") / "e"
    assert main(["extract", *DATA, "--encoder", "tiny-test", "--out", str(out), "--no-cache", "--quiet"]) == 0
    return out


def _probe(emb_dir, out, *extra):
    return ["probe", *DATA, "--embeddings", str(emb_dir), "--n-resamples", "20", "--out", str(out), *extra]


# ------------------------------------------------------------------ item 1: no silent overwrite
@pytest.mark.parametrize("name", ["per_label.csv", "reliability.csv", "results.npz"])
def test_probe_refuses_any_file_it_would_write_not_only_results_json(emb_dir, tmp_path, capsys, name):
    out = tmp_path / "o"
    out.mkdir()
    (out / name).write_text("mine")
    assert main(_probe(emb_dir, out)) == 1
    err = capsys.readouterr().err
    assert name in err and "--force" in err and len(err.strip().splitlines()) == 1, err
    assert _tree(out) == {name: b"mine"}  # untouched, nothing beside it


def test_scarcity_and_probe_both_list_every_existing_file(emb_dir, tmp_path, capsys):
    out = tmp_path / "s"
    (out / "knn").mkdir(parents=True)
    (out / "runs.csv").write_text("mine")
    (out / "knn" / "reliability.csv").write_text("mine")
    args = ["scarcity", *DATA, "--embeddings", str(emb_dir), "--fractions", "0.5", "--seeds", "1",
            "--n-resamples", "10", "--out", str(out)]  # fmt: skip
    assert main(args) == 1 and "runs.csv" in capsys.readouterr().err
    assert main(_probe(emb_dir, out, "--kind", "both")) == 1
    assert "knn/reliability.csv" in capsys.readouterr().err
    assert main(_probe(emb_dir, out, "--kind", "both", "--force")) == 0
    assert (out / "knn" / "reliability.csv").read_text() != "mine"
    assert not [p for p in out.rglob("*") if p.name.startswith(".ecgprobe")]  # no staging or probe files left


def test_existing_lists_patterns_and_staged_moves_everything_into_place(tmp_path):
    (tmp_path / "embeddings.conv1.npy").write_text("x")
    out = Output(tmp_path, ["manifest.json", "embeddings.*.npy"])
    assert out.existing() == ["embeddings.conv1.npy"]
    with pytest.raises(ConfigError, match=r"embeddings\.conv1\.npy.*--force"):
        out.check()
    fresh = Output(tmp_path / "new" / "deeper", ["a.json", "sub/b.json"])
    assert fresh.check() is fresh and not (tmp_path / "new").exists()  # the check leaves nothing behind
    with fresh.staged() as tmp:
        (tmp / "a.json").write_text("1")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.json").write_text("2")
        assert not (fresh.folder / "a.json").exists()  # nothing visible before the block succeeds
    assert _tree(fresh.folder) == {"a.json": b"1", "sub": None, "sub/b.json": b"2"}


def test_an_undeclared_output_is_a_bug_and_moves_nothing(tmp_path):
    out = Output(tmp_path / "o", ["results.json"])
    with pytest.raises(RuntimeError, match="not declared"), out.staged() as tmp:
        (tmp / "results.json").write_text("1")
        (tmp / "surprise.csv").write_text("2")
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------- item 4: folders that cannot be written
def test_out_that_is_a_file_or_lies_under_one(tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("mine")
    for out in (f, f / "sub"):
        args = ["extract", *DATA, "--encoder", "tiny-test", "--out", str(out), "--no-cache"]
        assert main(args) == 1
        err = capsys.readouterr().err
        assert "is a file, not a folder" in err and str(f) in err and len(err.strip().splitlines()) == 1, err
    assert f.read_text() == "mine"
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "linear").write_text("mine")  # a file where the sub-folder of --kind both goes
    with pytest.raises(OutputError, match="linear/ goes"):
        Output(tmp_path / "o", ["linear/results.json"]).check()


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.EACCES, "permission denied"), (errno.EROFS, "read-only"), (errno.ENOSPC, "no space left")],
)
def test_unwritable_out_is_refused_before_the_extraction(tmp_path, capsys, monkeypatch, code, words):
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(kwargs.get("dir", "")))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # the probe file cannot be created
    before = TinyTestEncoder.calls
    out = tmp_path / "ro"
    rc = main(["extract", *DATA, "--encoder", "tiny-test", "--out", str(out), "--no-cache", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and words in err and f"--out {out}" in err and "before any work" in err, err
    assert len(err.strip().splitlines()) == 1 and "internal error" not in err
    assert TinyTestEncoder.calls == before  # refused before a single forward pass
    assert not out.exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions")
def test_really_read_only_out(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        rc = main(["extract", *DATA, "--encoder", "tiny-test", "--out", str(ro / "x"), "--no-cache"])
        assert rc == 1 and "permission denied" in capsys.readouterr().err
    finally:
        ro.chmod(0o755)


def test_disk_full_while_writing_leaves_the_previous_outputs_intact(emb_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "p"
    assert main(_probe(emb_dir, out)) == 0
    capsys.readouterr()
    before = _tree(out)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ecgprobe._io.os, "fsync", full)
    assert main(_probe(emb_dir, out, "--force")) == 1
    err = capsys.readouterr().err
    assert "no space left" in err and "nothing was written" in err and str(out) in err, err
    assert len(err.strip().splitlines()) == 1
    assert _tree(out) == before  # the earlier, complete results are still there, byte for byte
    fresh = tmp_path / "fresh"
    assert main(_probe(emb_dir, fresh)) == 1
    assert not fresh.exists()  # no half-written folder passed off as a result
    assert not list(tmp_path.rglob(f"{STAGING_PREFIX}*"))


def test_describe_os_error_names_the_path_and_the_fix():
    text = describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/data/out/x.npz"))
    assert text.startswith("/data/out/x.npz: no space left") and "free some space" in text


# ------------------------------------------------------ item 3: names that become paths
@pytest.mark.parametrize("label", ["../../../x", "/etc/cron.d", "a/../../b", "..", "C:\\Windows", "~/x"])
def test_safe_name_refuses_what_would_leave_the_folder(label):
    with pytest.raises(ConfigError, match="outside the output folder"):
        safe_name(label, what="datasets[0] label")


@pytest.mark.parametrize(
    ("label", "clean"),
    [("ptbxl/superclass", "ptbxl-superclass"), ("my model v1.0", "my-model-v1.0"), (".hidden", "hidden"),
     ("ECG-FM (MIMIC)", "ECG-FM-MIMIC"), ("naïve", "naïve")],
)  # fmt: skip
def test_safe_name_keeps_plain_names_and_rewrites_separators(label, clean):
    assert safe_name(label, what="label") == clean


@pytest.mark.parametrize("bad", ["", "   ", "///", "x" * 300])
def test_safe_name_refuses_empty_and_overlong(bad):
    with pytest.raises(ConfigError):
        safe_name(bad, what="label")


def _study(tmp_path, datasets: str, encoders: str = "[tiny-test]") -> Path:
    cfg = tmp_path / "study.yaml"
    cfg.write_text(
        f"name: s\nout: {tmp_path / 'out'}\ncache_dir: null\nprofile: quick\n"
        f"datasets: {datasets}\nencoders: {encoders}\nanalyses: [linear_probe]\nreports: [model]\n"
    )
    return cfg


@pytest.mark.parametrize(
    "datasets",
    [
        "[{name: synthetic, label: ../../../escaped}]",
        f"[{{name: synthetic, label: {Path('/tmp').resolve() / 'escaped'}}}]",
        "[{name: synthetic, label_sets: ['../../escaped']}]",
    ],
)
def test_study_labels_cannot_write_outside_out(tmp_path, capsys, datasets):
    cfg = _study(tmp_path, datasets)
    before = _tree(tmp_path)
    rc = main(["run", str(cfg), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "outside the output folder" in err and "datasets[0] label" in err, err
    assert _tree(tmp_path) == before
    assert not list(tmp_path.parent.glob("**/escaped"))


def test_study_encoder_labels_are_sanitised_and_collisions_refused(tmp_path):
    from ecgprobe.workflows import load_study, study_outputs

    cfg = _study(
        tmp_path, "[synthetic]", "[{name: tiny-test, label: 'my/enc'}, {name: tiny-test, label: 'my enc'}]"
    )
    with pytest.raises(ConfigError, match="appear twice"):
        load_study(cfg)
    cfg = _study(tmp_path, "[synthetic]", "[{name: tiny-test, label: '../up'}]")
    with pytest.raises(ConfigError, match=r"encoders\[0\] label"):
        load_study(cfg)
    cfg = _study(tmp_path, "[synthetic]", "[{name: tiny-test, label: 'a/b'}]")
    assert study_outputs(load_study(cfg))[0] == "synthetic/a-b/results.json"


_TINY = [*DATA, "--encoder", "tiny-test"]


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["extract", *_TINY], "embeddings.conv1.npy"),
        (["probe", *_TINY, "--kind", "both"], "linear/per_label.csv"),
        (["probe", *_TINY, "--target", "age"], "per_target.csv"),
        (["scarcity", *_TINY], "curve.csv"),
        (["scarcity", *DATA, "--encoders", "tiny-test"], "scarcity.csv"),
        (["scarcity", *DATA, "--encoders", "tiny-test"], "results.npz"),
        (["report", *_TINY], "results.npz"),
        (["report", *_TINY, "--format", "pdf"], "report.pdf"),
        (["compare", *DATA, "--encoder-a", "tiny-test", "--encoder-b", "tiny-test"], "results.npz"),
        (["cka", *DATA, "--encoder-a", "tiny-test", "--encoder-b", "tiny-test"], "cka.npz"),
        (
            ["cka", *DATA, "--encoder-a", "tiny-test", "--encoder-b", "tiny-test", "--alignment"],
            "alignment.json",
        ),
        (["umap", *_TINY, "--color-by", "label,age"], "projection_age.png"),
        (["attribute", *_TINY], "linear_probe.npz"),
        (["demo"], "scarcity/scarcity.csv"),
        (["demo"], "index.html"),
    ],
    ids=lambda v: v if isinstance(v, str) else v[0],
)
def test_every_command_refuses_each_file_it_would_write(tmp_path, capsys, argv, name):
    out = tmp_path / "o"
    (out / name).parent.mkdir(parents=True, exist_ok=True)
    (out / name).write_text("mine")
    before = TinyTestEncoder.calls
    assert (
        main([*argv, "--out", str(out), "--no-cache"] if argv[0] != "demo" else [*argv, "--out", str(out)])
        == 1
    )
    err = capsys.readouterr().err
    assert name in err and "--force" in err and len(err.strip().splitlines()) == 1, err
    assert (out / name).read_text() == "mine" and TinyTestEncoder.calls == before  # refused before any work


def test_report_rerender_on_a_full_disk_keeps_the_complete_report(tmp_path, capsys, monkeypatch):
    out = tmp_path / "rep"
    args = ["report", *_TINY, "--analyses", "linear_probe", "--profile", "quick", "--format", "html",
            "--no-cache", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    before = _tree(out)
    assert set(before) == {"report.html", "results.json", "results.npz"}

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ecgprobe._io.os, "fsync", full)
    assert main(["report", "--from", str(out), "--force", "--format", "html", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no space left" in err and "nothing was written" in err and len(err.strip().splitlines()) == 1, err
    assert _tree(out) == before
