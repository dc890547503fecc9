"""Tests of the run's report (``OUT/report.html``) and of ``check --html``: one self-contained
page each (images embedded, nothing fetched), naming the command, the provenance of the tables
and, for each figure, its caption and claim."""

from __future__ import annotations

import base64
import re

import pandas as pd
import pytest
from lowrank_theory.cli import main
from lowrank_theory.figures.html import HtmlPage
from lowrank_theory.figures.make import FIGURES

#: A rate run of a few hundredths of a second: two noise levels, two seeds.
RATE = ["reproduce", "--only", "rate", "--set", "sigma=0.1,1", "--set", "n_grid=[20,100]",
        "--set", "N=200", "--seeds", "2"]


def _self_contained(text: str) -> None:
    assert "<script" not in text and "<link" not in text
    assert not re.search(r"(src|href)=\"(?!data:)", text)  # every image is data:


def test_reproduce_writes_a_self_contained_report(tmp_path, capsys):
    """The report embeds the PNG written beside it (the same bytes), gives its caption and
    claim, the command, the config hashes with their swept field and seeds, and the package
    version and git commit of the rows, all as the table records them."""
    out = tmp_path / "out"
    assert main([*RATE, "--out", str(out)]) == 0
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
    text = (out / "report.html").read_text()
    _self_contained(text)
    png = (out / "figures" / "adaptation_rate.png").read_bytes()
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert [base64.b64decode(e) for e in embedded] == [png]
    (spec,) = FIGURES["rate"]
    assert spec.caption in text and f"Claim: {spec.claim}".replace("'", "&#x27;") in text
    assert "lowrank-theory reproduce --only rate --set sigma=0.1,1" in text
    table = pd.read_csv(out / "rate.csv", dtype={"config_hash": str, "git_commit": str})
    for config_hash, rows in table.groupby("config_hash"):
        sigma = rows["sigma"].iloc[0]
        assert re.search(rf"<td>{config_hash}</td><td>sigma={sigma}</td><td>\[0, 1\]</td>",
                         text)
    assert set(table["git_commit"]) == set(re.findall(r"git commit ([0-9a-f+dirty]+|unknown)",
                                                      text))
    assert f"package version {table['package_version'].iloc[0]}" in text


def test_report_without_figures_still_gives_the_provenance(tmp_path, capsys):
    """--no-figures: no image, the provenance and the command all the same."""
    out = tmp_path / "out"
    assert main([*RATE, "--out", str(out), "--no-figures"]) == 0
    text = (out / "report.html").read_text()
    assert "data:image" not in text and "Experiment rate" in text and "--no-figures" in text


def test_check_html_writes_the_check_table(tmp_path, capsys):
    """``check --html FILE``: the same checks as the text table, one row each, with the
    command; a folder that does not exist is refused (exit 2) before any check runs."""
    page = tmp_path / "checks.html"
    assert main(["check", "--only", "sr-rank,truth-global", "--html", str(page)]) == 0
    text = page.read_text()
    _self_contained(text)
    assert re.findall(r"<tr><td>([a-z-]+)</td>", text) == ["sr-rank", "truth-global"]
    assert "lowrank-theory check --only sr-rank,truth-global --html" in text
    assert "<th>holds</th>" in text and "<td>True</td>" in text
    capsys.readouterr()
    assert main(["check", "--only", "sr-rank", "--html", str(tmp_path / "no" / "x.html")]) == 2
    assert "--html: folder" in capsys.readouterr().err


def test_html_page_escapes_text_and_inlines_svg(tmp_path):
    svg = tmp_path / "f.svg"
    svg.write_text('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>\n')
    page = HtmlPage("a <b> & c").paragraph("1 < 2").image(svg, "cap", "claim <x>")
    text = page.render()
    assert "<title>a &lt;b&gt; &amp; c</title>" in text and "1 &lt; 2" in text
    assert "<svg xmlns" in text and "<?xml" not in text and "claim &lt;x&gt;" in text


@pytest.mark.parametrize("name", [s.stem for specs in FIGURES.values() for s in specs])
def test_every_figure_has_a_caption_and_a_claim(name):
    spec = next(s for specs in FIGURES.values() for s in specs if s.stem == name)
    assert spec.caption.endswith(".") and len(spec.caption.split()) >= 8
    assert spec.claim.strip()


def test_report_reads_the_csv_when_there_is_no_parquet(tmp_path, capsys):
    """Without the Parquet file (no pyarrow), the provenance comes from the CSV alike."""
    from lowrank_theory.figures.report import provenance

    out = tmp_path / "out"
    assert main([*RATE, "--out", str(out), "--no-figures"]) == 0
    with_parquet = provenance(out, "rate")
    (out / "rate.parquet").unlink()
    from_csv = provenance(out, "rate")
    assert from_csv["table"] == "rate.csv"
    assert from_csv["configs"] == with_parquet["configs"] and len(from_csv["configs"]) == 2
    assert from_csv["git_commit"] == with_parquet["git_commit"]
