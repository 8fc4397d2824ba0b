"""`feedbackloop cluster FILE.csv --text-column C --output OUT.csv`: the contract analysts and the bench use."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli.app import app
from core.intake.file_reader import ImportFileError
from core.loop import FeedbackLoop
from core.themes.csv_file import cluster_csv

runner = CliRunner()


def write_feedback(path: Path) -> Path:
    topics = ["card delivery late", "password reset broken", "refund still pending", "app crashes on login"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "comment", "segment"])
        for index in range(60):
            writer.writerow([index, f"{topics[index % 4]} number {index}", "pro" if index % 2 else "free"])
        writer.writerow([60, "", "free"])  # an empty text stays unthemed, the row is kept
    return path


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_output_keeps_columns_adds_theme_and_is_deterministic(loop: FeedbackLoop, tmp_path: Path) -> None:
    source = write_feedback(tmp_path / "in.csv")
    cluster_csv(loop, source, "comment", tmp_path / "out1.csv")
    cluster_csv(loop, source, "comment", tmp_path / "out2.csv")
    rows = read(tmp_path / "out1.csv")
    assert (tmp_path / "out1.csv").read_bytes() == (tmp_path / "out2.csv").read_bytes()
    assert list(rows[0]) == ["id", "comment", "segment", "theme_id", "theme_label", "area_id", "area_label"]
    assert len(rows) == 61 and rows[-1]["theme_id"] == "-1"
    assert rows[-1]["area_id"] == "-1" and rows[-1]["area_label"] == ""
    themed = [r for r in rows if r["theme_id"] != "-1"]
    assert len({r["theme_id"] for r in themed}) == 4
    for row in themed:  # every theme is one topic, and its label names it
        same = {r["comment"].split(" number")[0] for r in themed if r["theme_id"] == row["theme_id"]}
        assert len(same) == 1 and row["theme_label"]
        assert row["area_id"] != "-1" and row["area_label"]
        # A theme sits in one area.
        assert len({r["area_id"] for r in themed if r["theme_id"] == row["theme_id"]}) == 1


@pytest.mark.parametrize(("content", "message"), [
    (b"id,body\n1,hello\n", "no column 'comment'"),
    (b"", "the file is empty"),
    (b"comment\n", "no rows after the header"),
    ("comment\ncaf\xe9\n".encode("latin-1"), "not UTF-8"),
])
def test_bad_files_exit_2(tmp_path: Path, content: bytes, message: str) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(content)
    args = ["cluster", str(source), "--text-column", "comment", "--output", str(tmp_path / "o.csv")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "o.csv").exists()


def test_missing_output_flag_exits_2(tmp_path: Path) -> None:
    source = write_feedback(tmp_path / "in.csv")
    result = runner.invoke(app, ["cluster", str(source), "--text-column", "comment"])
    assert result.exit_code == 2 and "--output" in result.output


def test_direct_call_raises_clear_errors(loop: FeedbackLoop, tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="cannot read"):
        cluster_csv(loop, tmp_path / "absent.csv", "text", tmp_path / "o.csv")
