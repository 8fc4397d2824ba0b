"""Each distinct text is embedded once: copies across channels, authors and re-imports reuse one vector; the
embedder gets length-grouped batches; the worker's batches reach ``/metrics``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, text

from api.app import create_app
from clustering.embedders import embed_by_length, length_batches
from core import hookimpl
from core.auth.api_keys import create_api_key
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import EmbeddingBatch, FeedbackItem
from core.plugin_manager import make_plugin_manager
from core.settings import Settings
from core.themes.build import count_pending_embeddings, embed_pending, recluster
from core.themes.embedding import BATCHES_KEPT, recent_throughput, record_batches
from core.themes.text_hash import normalised_text, text_hash
from core.types import ItemDraft
from tests.support.env import ADMIN_KEY
from tests.support.loops import HashEmbedder, secrets_dir_for
from tests.support.migrations import migrations
from tests.support.themes import CHECKOUT, LOGIN


class CountingEmbedder(HashEmbedder):
    """The fake bag-of-words embedder, noting every text it is asked for and reporting batches of two."""

    def __init__(self, name: str = "counting") -> None:
        self.name = name
        self.calls: list[list[str]] = []

    @property
    def texts(self) -> list[str]:
        return [value for call in self.calls for value in call]

    def embed(self, texts: Sequence[str], progress: object = None) -> np.ndarray:
        self.calls.append(list(texts))
        for start in range(0, len(texts), 2):
            if callable(progress):
                progress(len(texts[start:start + 2]))
        return super().embed(texts)


class CountingPlugin:
    """Registers the counting embedder the way any embedder plugin does."""

    def __init__(self) -> None:
        self.made: list[CountingEmbedder] = []

    @hookimpl
    def register_embedders(self, register: object) -> None:
        def factory(batch_size: int = 64) -> CountingEmbedder:
            self.made.append(CountingEmbedder())
            return self.made[-1]

        assert callable(register)
        register("counting", factory)


def counting_loop(url: str) -> tuple[FeedbackLoop, CountingPlugin]:
    plugin = CountingPlugin()
    pm = make_plugin_manager(load_installed=False)
    pm.register(plugin, name="counting-embedder")
    settings = Settings(database_url=url, admin_key=ADMIN_KEY, load_plugins="", embedding_model="counting",
                        secrets_dir=secrets_dir_for(url))
    loop = FeedbackLoop(settings, pm=pm)
    loop.migrate()
    return loop, plugin


@pytest.fixture
def counted(database_url: str) -> Iterator[tuple[FeedbackLoop, CountingPlugin]]:
    loop, plugin = counting_loop(database_url)
    yield loop, plugin
    loop.close()


def add(loop: FeedbackLoop, drafts: list[ItemDraft]) -> None:
    with loop.session() as session:
        ingest(loop, session, drafts)


def embed(loop: FeedbackLoop) -> int:
    with loop.session() as session:
        return embed_pending(loop, session)


def test_normalisation_folds_width_case_and_whitespace() -> None:
    assert normalised_text("  Ｃard\tDECLINED \n again ") == "card declined again"
    assert normalised_text("Straße") == normalised_text("STRASSE")
    assert text_hash("The ﬁle") == text_hash("the file")
    assert text_hash("card declined") != text_hash("card accepted")
    assert len(text_hash("x")) == 64


def test_each_distinct_text_is_embedded_once_and_a_reimport_embeds_nothing(
        counted: tuple[FeedbackLoop, CountingPlugin]) -> None:
    loop, plugin = counted
    texts = CHECKOUT[:4] + LOGIN[:4]
    # Eight texts, each sent by two people on the forum and once more with other spacing and case.
    add(loop, [ItemDraft(text=value, channel="forum", author=f"user{who}") for value in texts for who in (1, 2)]
        + [ItemDraft(text=f"  {value.upper()} ", channel="forum", author="user3") for value in texts])
    assert embed(loop) == 24
    embedder = plugin.made[0]
    assert sorted(embedder.texts) == sorted(texts)  # one call, each distinct text once

    # The same export imported again through another channel, by other people: every vector is reused.
    add(loop, [ItemDraft(text=value, channel="csv-import", author=f"importer{index}")
               for index, value in enumerate(texts)])
    assert embed(loop) == 8
    assert len(embedder.calls) == 1 and len(embedder.texts) == 8
    with loop.session() as session:
        rows = session.execute(select(FeedbackItem.text_hash, FeedbackItem.embedding, FeedbackItem.embedding_model)
                               ).all()
    assert len(rows) == 32 and {model for _, _, model in rows} == {"counting"}
    by_hash: dict[str | None, set[bytes | None]] = {}
    for hash_, blob, _ in rows:
        by_hash.setdefault(hash_, set()).add(blob)
    assert len(by_hash) == 8 and all(len(blobs) == 1 for blobs in by_hash.values())

    # Only a text nobody sent before reaches the embedder.
    add(loop, [ItemDraft(text="dark mode for the dashboard please", channel="csv-import"),
               ItemDraft(text=texts[0], channel="email", author="someone-else")])
    assert embed(loop) == 2
    assert embedder.calls[-1] == ["dark mode for the dashboard please"]


def test_a_new_process_reuses_the_stored_vectors(database_url: str) -> None:
    first, first_plugin = counting_loop(database_url)
    try:
        add(first, [ItemDraft(text=value, author="a") for value in CHECKOUT[:3]])
        embed(first)
    finally:
        first.close()
    second, second_plugin = counting_loop(database_url)  # a worker restarted, or another machine
    try:
        add(second, [ItemDraft(text=value, author="b") for value in CHECKOUT[:3]])
        assert embed(second) == 3
        assert second_plugin.made == [] or second_plugin.made[0].calls == []
    finally:
        second.close()
    assert len(first_plugin.made[0].texts) == 3


def test_an_edited_text_is_embedded_again_unless_its_new_text_is_known(
        counted: tuple[FeedbackLoop, CountingPlugin]) -> None:
    loop, plugin = counted
    add(loop, [ItemDraft(text=CHECKOUT[0], channel="forum", external_id="1"),
               ItemDraft(text=CHECKOUT[1], channel="forum", external_id="2"),
               ItemDraft(text=CHECKOUT[0], channel="chat", external_id="3")])
    embed(loop)
    add(loop, [ItemDraft(text="the card reader is broken", channel="forum", external_id="1")])
    add(loop, [ItemDraft(text=CHECKOUT[0].upper(), channel="forum", external_id="2")])
    assert embed(loop) == 2
    # Item 2's new text is item 3's, whose vector is still stored; item 1's old vector went with its edit.
    assert plugin.made[0].calls[-1] == ["the card reader is broken"]
    with loop.session() as session:
        items = {item.external_id: item for item in session.scalars(select(FeedbackItem))}
    assert items["1"].text_hash == text_hash("the card reader is broken")
    assert items["2"].text_hash == text_hash(CHECKOUT[0])


def test_vectors_of_another_model_are_replaced_and_never_clustered_together(database_url: str) -> None:
    loop, _ = counting_loop(database_url)
    try:
        add(loop, [ItemDraft(text=value) for value in CHECKOUT + LOGIN])
        embed(loop)
    finally:
        loop.close()
    other, plugin = counting_loop(database_url)
    other._embedder = CountingEmbedder(name="counting+other-backend")
    try:
        with other.session() as session:
            assert count_pending_embeddings(session) == 0
            assert count_pending_embeddings(session, "counting+other-backend") == 20
            # Nothing embedded by this model yet: re-clustering finds no item rather than mixing models.
            assert recluster(other, session).items == 0
        assert embed(other) == 20
        assert len(other._embedder.texts) == 20
        with other.session() as session:
            assert set(session.scalars(select(FeedbackItem.embedding_model))) == {"counting+other-backend"}
            assert recluster(other, session).items == 20
    finally:
        other.close()


def test_batches_are_grouped_by_length_and_rows_come_back_in_order() -> None:
    texts = ["a" * length for length in (5, 40, 1, 33, 7, 40, 2, 18, 9)]
    batches = [list(batch) for batch in length_batches(texts, 4)]
    assert [[len(texts[row]) for row in batch] for batch in batches] == [[40, 40, 33, 18], [9, 7, 5, 2], [1]]
    seen: list[list[str]] = []

    def encode(batch: list[str]) -> np.ndarray:
        seen.append(batch)
        return np.array([[len(value), 1.0] for value in batch], dtype=np.float32)

    sizes: list[int] = []
    rows = embed_by_length(texts, 4, encode, progress=sizes.append)
    assert rows[:, 0].tolist() == [len(value) for value in texts]
    assert sizes == [4, 4, 1] and [len(batch) for batch in seen] == [4, 4, 1]


def test_each_batch_is_recorded_and_old_ones_are_dropped(counted: tuple[FeedbackLoop, CountingPlugin]) -> None:
    loop, _ = counted
    add(loop, [ItemDraft(text=value) for value in CHECKOUT[:5]])
    embed(loop)
    with loop.session() as session:
        batches = session.scalars(select(EmbeddingBatch).order_by(EmbeddingBatch.id)).all()
        assert [batch.texts for batch in batches] == [2, 2, 1]  # as the embedder reported them
        assert {batch.model for batch in batches} == {"counting"} and all(batch.seconds >= 0 for batch in batches)
        record_batches(session, "counting", [(10, 0.5)] * (BATCHES_KEPT + 5))
    with loop.session() as session:
        assert session.scalar(select(EmbeddingBatch.id).order_by(EmbeddingBatch.id)) is not None
        assert len(session.scalars(select(EmbeddingBatch.id)).all()) == BATCHES_KEPT
        (figure,) = recent_throughput(session, window=50)
    assert (figure.model, figure.texts, figure.seconds, figure.texts_per_second) == ("counting", 500, 25.0, 20.0)


def test_metrics_report_the_workers_embedding_throughput(counted: tuple[FeedbackLoop, CountingPlugin]) -> None:
    loop, _ = counted
    with loop.session() as session:
        key = create_api_key(session, "prometheus", ["metrics"])
    with TestClient(create_app(loop.settings, loop=loop)) as client:
        def gauge() -> dict[str, float]:
            exposition = client.get("/metrics", headers={"Authorization": f"Bearer {key}"}).text
            return {sample.labels["model"]: sample.value for family in text_string_to_metric_families(exposition)
                    for sample in family.samples if sample.name == "feedbackloop_embedding_texts_per_second"}

        assert gauge() == {}
        with loop.session() as session:  # what a worker process wrote: two models' batches
            record_batches(session, "minilm", [(64, 0.5), (64, 0.3)])
            record_batches(session, "minilm+model2vec", [(1000, 0.1)])
        assert gauge() == {"minilm": pytest.approx(160.0), "minilm+model2vec": pytest.approx(10000.0)}


def test_the_migration_fills_hashes_and_downgrades(counted: tuple[FeedbackLoop, CountingPlugin]) -> None:
    loop, _ = counted
    add(loop, [ItemDraft(text="Exports  time out"), ItemDraft(text="dark mode")])
    with migrations(loop.engine) as schema:
        schema.down("0011")
        assert "embedding_batches" not in schema.tables()
        assert "text_hash" not in schema.columns("feedback_items")
        schema.up()
        hashes = dict(schema.connection.execute(text("SELECT text_redacted, text_hash FROM feedback_items")).all())
    assert hashes == {"Exports  time out": text_hash("exports time out"), "dark mode": text_hash("dark mode")}
