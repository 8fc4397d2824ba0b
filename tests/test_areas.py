"""Areas, the level above themes: found without a count, stable ids, a PM's move that sticks, CSV/API/CLI."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient
from sklearn.metrics import adjusted_rand_score
from sqlalchemy import select
from typer.testing import CliRunner

from clustering.areas import ThemeAreaGrouper, modularity_groups
from clustering.base import UNTHEMED
from clustering.vectors import unit_rows
from core.auth.api_keys import create_api_key
from core.cli.app import app as cli_app
from core.loop import FeedbackLoop
from core.models import AuditEntry, Theme
from core.themes.areas import area_views
from core.themes.undo import undo
from tests.support.loops import make_loop
from tests.test_review import grow_and_recluster, seed


def planted(seed: int = 0, areas: int = 4, themes: int = 3, items: int = 40) -> tuple[np.ndarray, np.ndarray,
                                                                                        np.ndarray]:
    """(unit rows, theme of each row, area of each row): themes close together inside far-apart areas."""
    rng = np.random.default_rng(seed)
    area_centres = rng.normal(size=(areas, 48))
    rows, theme_of, area_of = [], [], []
    for area in range(areas):
        for theme in range(themes):
            centre = area_centres[area] + 0.12 * rng.normal(size=48)
            rows.append(centre + 0.35 * rng.normal(size=(items, 48)))
            theme_of += [area * themes + theme] * items
            area_of += [area] * items
    return unit_rows(np.vstack(rows)).astype(np.float32), np.asarray(theme_of), np.asarray(area_of)


def test_recovers_planted_areas_without_a_count() -> None:
    for draw in range(3):
        points, themes, areas = planted(draw)
        grouper = ThemeAreaGrouper().fit(points, themes)
        assert len(set(grouper.area_of_theme_.values())) == 4
        assert adjusted_rand_score(areas, grouper.labels_) == 1.0
        # Every row of a theme is in that theme's area.
        assert all(grouper.labels_[i] == grouper.area_of_theme_[int(t)] for i, t in enumerate(themes))


def test_deterministic_and_independent_of_input_order() -> None:
    points, themes, _ = planted(1)
    first = ThemeAreaGrouper().fit_predict(points, themes)
    assert np.array_equal(first, ThemeAreaGrouper().fit_predict(points, themes))
    order = np.random.default_rng(5).permutation(len(points))
    shuffled = ThemeAreaGrouper().fit_predict(points[order], themes[order])
    assert adjusted_rand_score(first[order], shuffled) == 1.0


def test_unthemed_rows_get_no_area_and_a_sample_stands_in_at_scale() -> None:
    points, themes, areas = planted(2)
    themes = themes.copy()
    themes[::7] = UNTHEMED
    labels = ThemeAreaGrouper(max_exact=200).fit_predict(points, themes)
    assert (labels[themes == UNTHEMED] == UNTHEMED).all()
    kept = themes != UNTHEMED
    assert adjusted_rand_score(areas[kept], labels[kept]) == 1.0
    assert ThemeAreaGrouper().fit(points[:1], np.asarray([3])).area_of_theme_ == {3: 0}


def test_modularity_groups_stop_by_themselves() -> None:
    blocks = np.kron(np.eye(3), np.ones((4, 4))) + 0.01
    assert modularity_groups(blocks).tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert modularity_groups(np.zeros((2, 2))).tolist() == [0, 0]


def areas_of(loop: FeedbackLoop) -> dict[int, int | None]:
    with loop.session() as session:
        return {t.id: t.area_id for t in session.scalars(select(Theme).where(Theme.status != "archived"))}


def test_area_ids_stay_across_reclustering_and_a_move_sticks(loop: FeedbackLoop, client: TestClient,
                                                             auth: dict[str, str]) -> None:
    themes = seed(loop)
    before = areas_of(loop)
    assert all(area is not None for area in before.values())
    grow_and_recluster(loop)
    assert areas_of(loop) == before
    other = next(area for area in set(before.values()) if area != before[themes["card"]])
    moved = client.patch(f"/api/v1/themes/{themes['card']}", json={"area_id": other}, headers=auth)
    assert moved.status_code == 200 and moved.json()["area_id"] == other
    for _ in range(2):
        grow_and_recluster(loop)
        assert areas_of(loop)[themes["card"]] == other
    with loop.session() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "set_area")).one()
        assert entry.details["to"] == other and entry.details["from"] == before[themes["card"]]
        undo(loop, session, entry.id, "pm")
    assert areas_of(loop)[themes["card"]] == before[themes["card"]]
    assert client.patch(f"/api/v1/themes/{themes['card']}", json={"area_id": 999_999},
                        headers=auth).status_code == 404


def test_api_lists_areas_and_names_each_themes_area(loop: FeedbackLoop, client: TestClient,
                                                    auth: dict[str, str]) -> None:
    seed(loop)
    listed = client.get("/api/v1/areas", headers=auth).json()
    assert listed and sum(area["volume"] for area in listed) == 36
    assert abs(sum(area["share_of_voice"] for area in listed) - 1.0) < 1e-9
    assert all(area["label"] and area["trend"] > 0 and area["themes"] >= 1 for area in listed)
    labels = {area["id"]: area["label"] for area in listed}
    for theme in client.get("/api/v1/themes", headers=auth).json():
        assert labels[theme["area_id"]] == theme["area_label"]
        detail = client.get(f"/api/v1/themes/{theme['id']}", headers=auth).json()
        assert detail["area_id"] == theme["area_id"]
    with loop.session() as session:
        assert [view.id for view in area_views(session)] == [area["id"] for area in listed]


def test_only_pm_keys_move_themes_between_areas(loop: FeedbackLoop, client: TestClient) -> None:
    themes = seed(loop)
    with loop.session() as session:
        keys = {scope: create_api_key(session, f"{scope}-key", [scope]) for scope in ("read", "pm")}
    target = areas_of(loop)[themes["login"]]
    as_reader = {"Authorization": f"Bearer {keys['read']}"}
    assert client.get("/api/v1/areas", headers=as_reader).status_code == 200
    assert client.patch(f"/api/v1/themes/{themes['card']}", json={"area_id": target},
                        headers=as_reader).status_code == 403
    assert client.patch(f"/api/v1/themes/{themes['card']}", json={"area_id": target},
                        headers={"Authorization": f"Bearer {keys['pm']}"}).status_code == 200


def test_cli_shows_areas_and_each_themes_area(cli_env: str) -> None:
    loop = make_loop(cli_env)
    seed(loop)
    loop.close()
    runner = CliRunner()
    shown = runner.invoke(cli_app, ["areas"], env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    assert "3 areas" in shown.output and all(len(line) <= 80 for line in shown.output.splitlines())
