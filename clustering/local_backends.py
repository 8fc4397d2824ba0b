"""Optional embedding backends built from a local sentence-transformers model directory, never downloaded.

- ``OnnxEmbedder``: the same transformer exported once with ``torch.onnx`` and run by ONNX Runtime (extra
  ``onnx``); the same pooling and normalisation as sentence-transformers, so its vectors match torch's to
  float rounding, yet they are stored under another model name.
- ``StaticEmbedder``: a static model distilled from that transformer with model2vec (extra ``model2vec``): one
  vector per vocabulary token, averaged; far faster, coarser.

Each artefact is made at first use (or by ``feedbackloop embeddings prepare``) in a cache folder, under a name
that carries the source model's size and modification time, written to a temporary name and renamed, so a
half-written file is never loaded and a changed model is built anew.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clustering.base import Embeddings
from clustering.embedders import embed_by_length, normalised_rows

Progress = Callable[[int], None]
# Static models: the dimensions model2vec's PCA keeps (its default).
STATIC_DIMS = 256


def model_fingerprint(model_dir: Path) -> str:
    """Changes when the model's weights do: the size and modification time of its weights files."""
    parts = []
    for weights in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin")):
        stat = weights.stat()
        parts.append(f"{stat.st_size:x}-{int(stat.st_mtime):x}")
    return "_".join(parts) or "noweights"


def _max_seq_length(model_dir: Path) -> int:
    config = model_dir / "sentence_bert_config.json"
    if config.exists():
        return int(json.loads(config.read_text()).get("max_seq_length", 256))
    return 256


def export_onnx(model_dir: Path, target: Path) -> Path:
    """The model's transformer as ONNX (dynamic batch and sequence axes), written atomically to ``target``."""
    import torch
    from sentence_transformers import SentenceTransformer

    transformer: Any = SentenceTransformer(str(model_dir), device="cpu")[0].auto_model
    transformer.eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    sample = torch.ones((2, 8), dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        written = Path(scratch) / target.name
        # The exporter warns about tracing internals of the transformer (constant folding, index ops) that do
        # not apply to a fixed model; the test compares the export's vectors with torch's instead.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(LastHiddenState(transformer), (sample, sample, torch.zeros_like(sample)), str(written),
                              input_names=names, output_names=["hidden"], opset_version=17, dynamo=False,
                              dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*names, "hidden"]})
        os.replace(written, target)
    return target


class OnnxEmbedder:
    """Mean-pooled, normalised MiniLM vectors from ONNX Runtime; exported from ``model_dir`` on first use."""

    def __init__(self, model_dir: str, cache_dir: str, name: str, batch_size: int = 64) -> None:
        self.model_dir = Path(model_dir)
        self.cache_dir = Path(cache_dir)
        self.name = name
        self.batch_size = batch_size
        self._session: Any = None
        self._tokenizer: Any = None

    @property
    def artefact(self) -> Path:
        return self.cache_dir / f"{self.name}-{model_fingerprint(self.model_dir)}.onnx"

    def prepare(self) -> Path:
        """The exported model, made now when it is not cached yet."""
        if not self.artefact.exists():
            export_onnx(self.model_dir, self.artefact)
        return self.artefact

    def _load(self) -> None:
        if self._session is not None:
            return
        import onnxruntime
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=_max_seq_length(self.model_dir))
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the batch's longest, as sentence-transformers
        self._tokenizer = tokenizer
        self._session = onnxruntime.InferenceSession(str(self.prepare()), providers=["CPUExecutionProvider"])

    def _encode(self, batch: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(batch)
        ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
        hidden = self._session.run(["hidden"], {"input_ids": ids, "attention_mask": mask,
                                                "token_type_ids": np.zeros_like(ids)})[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return normalised_rows(pooled)

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> Embeddings:
        self._load()
        return embed_by_length(texts, self.batch_size, self._encode, progress)


def distill_static(model_dir: Path, target: Path, dims: int = STATIC_DIMS,
                   token_remove_pattern: str | None = r"\[unused\d+\]") -> Path:
    """A model2vec static model distilled from ``model_dir``, saved atomically as the folder ``target``."""
    from model2vec.distill import distill

    static = distill(model_name=str(model_dir), pca_dims=dims, token_remove_pattern=token_remove_pattern)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        static.save_pretrained(str(scratch))
        os.replace(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


class StaticEmbedder:
    """model2vec static vectors (averaged token vectors, normalised); distilled from ``model_dir`` on first use.

    ``token_remove_pattern`` drops vocabulary tokens before distilling (model2vec's option): the default only
    the unused placeholders; tests keep a few hundred tokens to distil in seconds.
    """

    def __init__(self, model_dir: str, cache_dir: str, name: str, batch_size: int = 1024,
                 token_remove_pattern: str | None = r"\[unused\d+\]") -> None:
        self.model_dir = Path(model_dir)
        self.cache_dir = Path(cache_dir)
        self.name = name
        self.batch_size = batch_size
        self.token_remove_pattern = token_remove_pattern
        self._model: Any = None

    @property
    def artefact(self) -> Path:
        kept = "" if self.token_remove_pattern == r"\[unused\d+\]" else "-reduced"
        return self.cache_dir / f"{self.name}-{model_fingerprint(self.model_dir)}-{STATIC_DIMS}d{kept}"

    def prepare(self) -> Path:
        if not (self.artefact / "model.safetensors").exists():
            distill_static(self.model_dir, self.artefact, token_remove_pattern=self.token_remove_pattern)
        return self.artefact

    def _encode(self, batch: list[str]) -> np.ndarray:
        return normalised_rows(self._model.encode(batch, batch_size=len(batch), show_progress_bar=False))

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> Embeddings:
        if self._model is None:
            from model2vec import StaticModel

            self._model = StaticModel.from_pretrained(str(self.prepare()))
        return embed_by_length(texts, self.batch_size, self._encode, progress)
