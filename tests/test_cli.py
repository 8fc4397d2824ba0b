"""The command line: imports that refuse bad files (exit 2, nothing stored), tables, channels."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from core.cli.app import app

runner = CliRunner()


def stored(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM feedback_items")).scalar_one())
    finally:
        engine.dispose()


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_ingest_csv_then_reimport_adds_nothing(cli_env: str, tmp_path: Path) -> None:
    file = write(tmp_path / "survey.csv", "id,comment,tier\n1,Love the new app,gold\n2,\"Fees, again?\",free\n")
    args = ["ingest", str(file), "--text-column", "comment", "--id-column", "id", "--metadata-column", "tier"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "2 new" in first.output
    again = runner.invoke(app, args)
    assert "0 new" in again.output and "2 already stored" in again.output
    assert stored(cli_env) == 2


def test_ingest_jsonl(cli_env: str, tmp_path: Path) -> None:
    file = write(tmp_path / "reviews.jsonl", '{"body": "Crashes on start", "user": "u1"}\n\n{"body": "Great"}\n')
    result = runner.invoke(app, ["ingest", str(file), "--text-column", "body", "--author-column", "user"])
    assert result.exit_code == 0, result.output
    assert stored(cli_env) == 2


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.csv", "id,body\n1,hello\n", "column(s) ['text'] not found"),
    ("empty.csv", "", "the file is empty"),
    ("header-only.csv", "text\n", "no rows after the header"),
    ("blank-row.csv", "text\nfine\n   \n", "line 3: column 'text' is empty"),
    ("ragged.csv", "text\nok\n\"a\",\"b\"\n", "more fields than the header"),
    ("latin1.csv", "text\nok\ncaf\xe9 au lait\n".encode("latin-1"), "not UTF-8"),
    ("broken.jsonl", '{"text": "ok"}\n{"text": nope}\n', "line 2: not valid JSON"),
    ("array.jsonl", '{"text": "ok"}\n[1, 2]\n', "line 2: expected a JSON object"),
    ("notes.txt", "text\nhello\n", "unknown format"),
    ("bad-date.csv", "text,at\nhello,yesterday\n", "not an ISO 8601 date"),
])
def test_malformed_file_exits_2_and_stores_nothing(cli_env: str, tmp_path: Path, name: str,
                                                   content: str | bytes, message: str) -> None:
    runner.invoke(app, ["ingest", str(write(tmp_path / "good.csv", "text\nalready here\n"))])
    args = ["ingest", str(write(tmp_path / name, content))]
    if name == "bad-date.csv":
        args += ["--created-at-column", "at"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert stored(cli_env) == 1  # what was stored before is still there, nothing new


def test_missing_file_exits_2(cli_env: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2 and "cannot read" in result.output


def test_themes_and_route_dry_run_with_bad_rules(cli_env: str, tmp_path: Path) -> None:
    assert runner.invoke(app, ["themes"]).exit_code == 0
    source = '[[rule]]\nname = "x"\nowner = "cards"\n\n[[rule]]\nname = "y"\nonwer = "z"\n'
    rules = write(tmp_path / "rules.toml", source)
    result = runner.invoke(app, ["route", "--dry-run", "--rules", str(rules)])
    assert result.exit_code == 2
    assert "line 5" in result.output and "onwer" in result.output


def test_channels_commands(cli_env: str) -> None:
    added = runner.invoke(app, ["channels", "add", "survey", "--plugin", "webhook",
                                "--secret-env", "FEEDBACKLOOP_SECRET_SURVEY", "--option", "text_field=answer"])
    assert added.exit_code == 0, added.output
    assert "/webhooks/survey" in added.output
    assert "survey" in runner.invoke(app, ["channels", "list"]).output
    assert runner.invoke(app, ["channels", "add", "x", "--plugin", "nope"]).exit_code == 2
    assert runner.invoke(app, ["channels", "add", "y", "--plugin", "webhook", "--option", "novalue"]).exit_code == 2
    assert runner.invoke(app, ["channels", "remove", "survey"]).exit_code == 0
    assert runner.invoke(app, ["channels", "remove", "survey"]).exit_code == 2


def test_keys_create_gives_a_working_key(cli_env: str) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from core.settings import get_settings

    created = runner.invoke(app, ["keys", "create", "survey-bot", "--scope", "pm", "--scope", "intake"])
    assert created.exit_code == 0, created.output
    key = created.output.strip()
    assert runner.invoke(app, ["keys", "create", "x", "--scope", "root"]).exit_code == 2
    with TestClient(create_app(get_settings())) as client:
        headers = {"Authorization": f"Bearer {key}"}
        assert client.post("/api/v1/feedback", json={"text": "works"}, headers=headers).status_code == 201
        assert client.get("/api/v1/channels", headers=headers).status_code == 403  # pm and intake are not admin


def test_a_malformed_setting_is_a_clear_error_and_stores_nothing(cli_env: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import get_settings

    file = write(tmp_path / "survey.csv", "comment\nLove the new app\n")
    assert runner.invoke(app, ["ingest", str(file), "--text-column", "comment"]).exit_code == 0
    monkeypatch.setenv("FEEDBACKLOOP_CLUSTER_GROUP_MARGIN", "wide")
    get_settings.cache_clear()
    result = runner.invoke(app, ["ingest", str(file), "--text-column", "comment"])
    assert result.exit_code == 2
    assert "FEEDBACKLOOP_CLUSTER_GROUP_MARGIN" in result.output and "'wide'" in result.output
    assert stored(cli_env) == 1
