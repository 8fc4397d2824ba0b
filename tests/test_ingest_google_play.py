"""``feedbackloop ingest --preset google-play``: Google Play Console's reviews report (UTF-16 CSV) imported
without a column mapping; a later export of the same month adds only what is new and applies edits."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from core.cli.app import app
from core.clock import aware
from core.intake.file_reader import ImportFileError
from core.intake.import_presets import google_play_review_id, preset_rows
from core.loop import FeedbackLoop
from core.models import FeedbackItem
from tests.support.loops import make_loop

DATA = Path(__file__).parent / "data" / "google_play"
NOVEMBER = DATA / "reviews_com.acme.notes_202611.csv"
NOVEMBER_LATER = DATA / "reviews_com.acme.notes_202611_later.csv"
runner = CliRunner()


def stored(url: str) -> dict[str, FeedbackItem]:
    loop: FeedbackLoop = make_loop(url)
    try:
        with loop.session() as session:
            return {item.external_id: item for item in session.scalars(select(FeedbackItem))}
    finally:
        loop.close()


def test_the_preset_reads_a_reviews_report(cli_env: str) -> None:
    result = runner.invoke(app, ["ingest", str(NOVEMBER), "--preset", "google-play"])
    assert result.exit_code == 0, result.output
    assert "3 new" in result.output and "1 rows left out: ratings without text" in result.output
    items = stored(cli_env)
    assert sorted(items) == ["google-play:0b9c8d7e-6f5a-4b3c-8d2e-1f0a9b8c7d6e",
                             "google-play:8f3a0d2e-4c1b-4e9a-9d3e-1a2b3c4d5e6f",
                             "google-play:gp:AOqpTOFm3xK9vQ2aLw8sYbN5uR7tE1cZ0dH4jG6fP"]
    german = items["google-play:0b9c8d7e-6f5a-4b3c-8d2e-1f0a9b8c7d6e"]
    assert german.channel == "google-play"
    assert german.text_original == "Gute App\n\nWidgets sind super, aber die Suche ist langsam."
    assert aware(german.created_at) == datetime(2026, 11, 5, 19, 2, 10, tzinfo=UTC)
    assert german.metadata_json == {
        "rating": 4, "package_name": "com.acme.notes", "app_version_code": "612", "app_version_name": "6.1.2",
        "reviewer_language": "de", "device": "panther", "developer_replied": True}
    assert german.url is not None and "reviewId=0b9c8d7e" in german.url


def test_a_later_export_of_the_same_month_adds_the_new_and_applies_edits(cli_env: str, tmp_path: Path) -> None:
    assert runner.invoke(app, ["ingest", str(NOVEMBER), "--preset", "google-play"]).exit_code == 0
    result = runner.invoke(app, ["ingest", str(NOVEMBER_LATER), "--preset", "google-play"])
    assert result.exit_code == 0, result.output
    assert "1 new, 1 updated, 2 already stored" in result.output
    edited = stored(cli_env)["google-play:8f3a0d2e-4c1b-4e9a-9d3e-1a2b3c4d5e6f"]
    assert edited.text_original.endswith("but sync is still slow.")
    assert edited.metadata_json["rating"] == 3 and edited.metadata_json["app_version_code"] == "613"
    # The first export again (re-saved: another file to the import's bookkeeping) does not bring the old text
    # back: its "Review Last Update" is older than the stored one.
    resaved = tmp_path / "reviews_resaved.csv"
    resaved.write_bytes(NOVEMBER.read_bytes() + "\n".encode("utf-16-le"))
    again = runner.invoke(app, ["ingest", str(resaved), "--preset", "google-play"])
    assert again.exit_code == 0 and "0 new, 0 updated, 3 already stored" in again.output, again.output
    assert stored(cli_env)["google-play:8f3a0d2e-4c1b-4e9a-9d3e-1a2b3c4d5e6f"].text_original.endswith("still slow.")


def test_the_channel_can_be_named(cli_env: str) -> None:
    result = runner.invoke(app, ["ingest", str(NOVEMBER), "--preset", "google-play", "--channel", "android"])
    assert result.exit_code == 0, result.output
    assert {item.channel for item in stored(cli_env).values()} == {"android"}


@pytest.mark.parametrize(("args", "message"), [
    (["--preset", "app-gallery"], "unknown --preset 'app-gallery'; presets: google-play"),
    (["--preset", "google-play", "--text-column", "Review Text"], "names the columns itself"),
])
def test_bad_preset_use_exits_2(cli_env: str, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["ingest", str(NOVEMBER), *args])
    assert result.exit_code == 2 and message in result.output


def test_a_file_that_is_not_a_reviews_report_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "stats.csv"
    other.write_text("Date,Package Name,Daily Average Rating\n2026-11-01,com.acme.notes,4.2\n", encoding="utf-16")
    with pytest.raises(ImportFileError, match="not a Google Play reviews report"):
        preset_rows(other, "google-play", None)
    ratings_only = tmp_path / "ratings.csv"
    ratings_only.write_text("Review Text,Star Rating,Review Submit Date and Time\n,5,2026-11-01T00:00:00Z\n")
    with pytest.raises(ImportFileError, match="no review in the file has text"):
        preset_rows(ratings_only, "google-play", None)
    bad_stars = tmp_path / "stars.csv"
    bad_stars.write_text("Review Text,Star Rating,Review Submit Date and Time\nmeh,6,2026-11-01T00:00:00Z\n")
    with pytest.raises(ImportFileError, match="line 2: 'Star Rating' is '6'"):
        preset_rows(bad_stars, "google-play", None)


def test_review_ids_from_both_link_forms() -> None:
    assert google_play_review_id("https://play.google.com/console/developers/1/app/2/user-feedback/review-details"
                                 "?reviewId=abc-123&corpus=PUBLIC_REVIEWS") == "abc-123"
    assert google_play_review_id("http://play.google.com/apps/publish?account=1#ReviewDetailsPlace:"
                                 "p=com.acme.notes&reviewid=gp:AOqp") == "gp:AOqp"
    assert google_play_review_id("") is None and google_play_review_id("https://example.com/") is None
