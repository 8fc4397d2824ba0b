"""Embedding and re-clustering into themes whose ids, names and owners carry over."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import ColumnElement, delete, func, insert, or_, select, true
from sqlalchemy.orm import Session

from clustering.identity import match_to_predecessors
from clustering.incremental import RADIUS_QUANTILE
from clustering.labels import ThemeLabeller
from clustering.pipeline import ThemePipeline, ThemeResult
from clustering.spectral import SpectralThemeClusterer
from clustering.steering import steer
from core.community.item_metadata import not_a_staff_answer
from core.logs import log_items_after_commit
from core.loop import FeedbackLoop
from core.models import FeedbackItem, Theme, ThemeMembership
from core.settings import Settings
from core.themes.areas import write_areas
from core.themes.embedding import BatchTimer, embed_distinct, record_batches, stored_vectors
from core.themes.suggestions import forbidden_themes
from core.themes.text_hash import text_hash
from core.themes.views import final_theme, theme_view
from core.types import ItemDraft, MembershipSource

Progress = Callable[[int], None]
EMBEDDING_CHUNK = 20_000  # rows read per round trip when re-clustering: 30 MiB of MiniLM vectors
MEMBERSHIP_BATCH = 20_000
LEFT_OVER_CHUNK = 2_000  # left-overs compared with every centre at once: 2,000 x themes floats
log = logging.getLogger(__name__)


def make_clusterer(settings: Settings) -> SpectralThemeClusterer:
    return SpectralThemeClusterer(n_neighbors=settings.cluster_neighbors, n_components=settings.cluster_components,
                                  distance_threshold=settings.cluster_threshold, min_size=settings.min_theme_size,
                                  coarser_margin=settings.cluster_group_margin)


def theme_pipeline(loop: FeedbackLoop) -> ThemePipeline:
    """The clusterer, and a labeller that ranks name candidates with the items' own embedder: one batch of
    phrases per re-clustering, never per item (bench/RESULTS.md, "Theme names")."""
    return ThemePipeline(make_clusterer(loop.settings), ThemeLabeller(embedder=loop.embedder))


def embed_pending(loop: FeedbackLoop, session: Session, progress: Progress | None = None) -> int:
    """Embed every item that has no embedding from the configured model yet (new, edited, or embedded by
    another model or backend); each distinct text once, and none whose vector is already stored
    (core/themes/embedding.py). The number of items given a vector."""
    # Whole rows in one query: the hook below reads their other columns, and one SELECT per item would cost
    # more than the hashing.
    items = session.scalars(select(FeedbackItem).where(lacks_embedding_of(loop.embedder.name))
                            .order_by(FeedbackItem.id)).all()
    return embed_items(loop, session, list(items), progress)


def embed_items(loop: FeedbackLoop, session: Session, items: list[FeedbackItem],
                progress: Progress | None = None) -> int:
    """Give ``items`` (rows of this session: all pending ones, or a worker's claimed batch) the configured
    model's vectors, each distinct text embedded once; the number of items given a vector."""
    if not items:
        return 0
    embedder = loop.embedder
    hashes = [text_hash(item.text_redacted) for item in items]
    blobs = stored_vectors(session, hashes, embedder.name)
    first_text = {hash_: item.text_redacted for hash_, item in reversed(list(zip(hashes, items, strict=True)))}
    missing = [hash_ for hash_ in dict.fromkeys(hashes) if hash_ not in blobs]
    timer = BatchTimer(progress)
    if missing:
        fresh = embed_distinct(embedder, [first_text[hash_] for hash_ in missing], timer)
        blobs.update((hash_, vector.tobytes()) for hash_, vector in zip(missing, fresh, strict=True))
        record_batches(session, embedder.name, timer.batches)
    if progress is not None and len(items) > len(missing):
        progress(len(items) - len(missing))  # the items that reused a vector
    for item, hash_ in zip(items, hashes, strict=True):
        item.embedding = blobs[hash_]
        item.embedding_model = embedder.name
        item.text_hash = hash_
    vectors = np.vstack([np.frombuffer(blobs[hash_], dtype=np.float32) for hash_ in hashes])
    rescore_from_embeddings(loop, items, vectors)
    log_items_after_commit(session, log, "item.embedded",
                           [{"item_id": item.id, "request_id": item.request_id} for item in items], model=embedder.name)
    return len(items)


def lacks_embedding_of(model: str) -> ColumnElement[bool]:
    return or_(FeedbackItem.embedding.is_(None), FeedbackItem.embedding_model.is_(None),
               FeedbackItem.embedding_model != model)


def rescore_from_embeddings(loop: FeedbackLoop, items: list[FeedbackItem], vectors: np.ndarray) -> None:
    """The ``enrich_embedded`` hook on the items just embedded (intake stays fast: no embedding there)."""
    drafts = [ItemDraft(text=item.text_original, redacted_text=item.text_redacted, sentiment=item.sentiment,
                        kind=item.kind) for item in items]
    loop.pm.hook.enrich_embedded(items=drafts, embeddings=vectors, embedder=loop.embedder.name,
                                 settings=loop.settings)
    for item, draft in zip(items, drafts, strict=True):
        if draft.sentiment != item.sentiment:  # assigned only when changed: an unchanged item writes nothing
            item.sentiment = draft.sentiment
        if draft.kind != item.kind:
            item.kind = draft.kind


def count_pending_embeddings(session: Session, model: str | None = None) -> int:
    """Items without an embedding; given ``model``, also those embedded by another model."""
    waiting = FeedbackItem.embedding.is_(None) if model is None else lacks_embedding_of(model)
    return int(session.scalar(select(func.count()).where(waiting)) or 0)


@dataclass
class ClusterReport:
    items: int
    themes: int
    created: int
    kept: int
    unthemed: int
    areas: int = 0
    # Items the clustering left out, placed in their nearest theme with their low score (the triage's "unsure").
    placed_far: int = 0


# The tables a re-clustering rewrites wholesale (their planner statistics want refreshing: core.db).
RECLUSTERING_REWRITES = ("theme_memberships", "themes")


def recluster(loop: FeedbackLoop, session: Session) -> ClusterReport:
    """Cluster every embedded item; themes keep their ids when their items mostly stay together.

    Items a person placed (membership source "human") stay where they were put, and no item goes into a
    theme a person rejected it for (a rejected suggestion, core/themes/suggestions.py).
    """
    item_ids, texts, embeddings = _embedded_items(session, loop.embedder.name)
    result = theme_pipeline(loop).run(texts, embeddings)
    old_members, human = _memberships(session)
    new_members = _machine_members(item_ids, result.labels, human)
    mapping = {label: final_theme(session, theme_id).id
               for label, theme_id in match_to_predecessors(new_members, old_members).items()}
    _keep_merged_together(session, mapping, new_members, old_members)
    forbidden = forbidden_themes(session)
    steered = {item_id: theme_id for item_id, theme_id in
               _steer_by_people(loop.settings, item_ids, embeddings, result.labels, human, mapping).items()
               if theme_id not in forbidden.get(item_id, ())}
    for members in new_members.values():
        members.difference_update(steered)
    _keep_out_of_rejected(new_members, mapping, forbidden)
    placed_far, unthemed = _place_left_overs(item_ids, embeddings, result, new_members, mapping, forbidden,
                                             set(human) | set(steered))

    session.execute(delete(ThemeMembership).where(ThemeMembership.source == MembershipSource.MACHINE))
    created_ids = _write_themes(session, result, texts, embeddings, new_members, mapping, item_ids)
    insert_memberships(session, [{"item_id": item_id, "theme_id": theme_id, "source": MembershipSource.MACHINE.value,
                                  "score": None} for item_id, theme_id in sorted(steered.items())])
    _archive_unkept(session, set(mapping.values()) | set(human.values()))
    session.flush()
    areas = write_areas(session, result, mapping)
    for theme_id in created_ids:
        theme = session.get(Theme, theme_id)
        assert theme is not None
        loop.pm.hook.theme_created(theme=theme_view(session, theme))
    return ClusterReport(items=len(item_ids), themes=len(mapping), created=len(created_ids),
                         kept=len(mapping) - len(created_ids), unthemed=unthemed, areas=areas, placed_far=placed_far)


def _embedded_items(session: Session, model: str) -> tuple[list[int], list[str], np.ndarray]:
    """Ids, texts and embeddings (one row each) of every item embedded by ``model``, in id order (vectors of
    two models are never compared); staff answers are kept for community figures
    (core/community/vitality.py) but are no customer's feedback, so no theme's.

    Streamed in chunks into one preallocated array: at a million items, holding every row's bytes as Python
    objects and then stacking them would need the embeddings' size twice over (bench/million_bench.py).
    """
    query = (select(FeedbackItem.id, FeedbackItem.text_redacted, FeedbackItem.embedding)
             .where(FeedbackItem.embedding.is_not(None), FeedbackItem.embedding_model == model,
                    not_a_staff_answer(session)).order_by(FeedbackItem.id))
    expected = int(session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0)
    item_ids: list[int] = []
    texts: list[str] = []
    embeddings: np.ndarray | None = None
    extra: list[np.ndarray] = []  # rows committed by others between the count and the read (PostgreSQL)
    for chunk in session.execute(query.execution_options(yield_per=EMBEDDING_CHUNK)).partitions():
        vectors = np.frombuffer(b"".join(row[2] or b"" for row in chunk), dtype=np.float32).reshape(len(chunk), -1)
        if embeddings is None:
            embeddings = np.empty((expected, vectors.shape[1]), dtype=np.float32)
        start = len(item_ids)
        fits = max(0, min(len(chunk), expected - start))
        embeddings[start:start + fits] = vectors[:fits]
        if fits < len(chunk):
            extra.append(vectors[fits:].copy())
        item_ids += [row[0] for row in chunk]
        texts += [row[1] for row in chunk]
    if embeddings is None:
        return [], [], np.zeros((0, 0), dtype=np.float32)  # no rows: the size is the embedder's
    embeddings = np.concatenate([embeddings, *extra]) if extra else embeddings[:len(item_ids)]
    return item_ids, texts, embeddings


def _memberships(session: Session) -> tuple[dict[int, set[int]], dict[int, int]]:
    """({theme id: its item ids} before this run, {item id: theme id} for items a person placed)."""
    old_members: dict[int, set[int]] = defaultdict(set)
    human: dict[int, int] = {}
    rows = select(ThemeMembership.item_id, ThemeMembership.theme_id, ThemeMembership.source)
    for item_id, theme_id, source in session.execute(rows.execution_options(yield_per=EMBEDDING_CHUNK)):
        old_members[theme_id].add(item_id)
        if source == MembershipSource.HUMAN:
            human[item_id] = theme_id
    return old_members, human


def _machine_members(item_ids: list[int], labels: np.ndarray, human: dict[int, int]) -> dict[int, set[int]]:
    """{cluster label: its item ids}, leaving out the unthemed and the items a person placed."""
    new_members: dict[int, set[int]] = defaultdict(set)
    for item_id, label in zip(item_ids, labels.tolist(), strict=True):
        if label >= 0 and item_id not in human:
            new_members[label].add(item_id)
    return new_members


def _write_themes(session: Session, result: ThemeResult, texts: list[str], embeddings: np.ndarray,
                  new_members: dict[int, set[int]], mapping: dict[int, int], item_ids: list[int]) -> list[int]:
    """One theme per cluster (its predecessor, or a new one) with its machine memberships; ``mapping``
    ends as {label: theme id}. The ids of the themes created."""
    created_ids: list[int] = []
    described: set[int] = set()
    row_of = {item_id: row for row, item_id in enumerate(item_ids)}
    rows_of_label = _rows_by_label(result.labels)
    memberships: list[dict[str, object]] = []
    # Largest clusters first: when a person's merge sends two clusters to one theme, the larger describes it.
    for label in sorted(result.themes, key=lambda label: (-len(new_members[label]), label)):
        if not new_members[label]:
            mapping.pop(label, None)  # every item went where people's moves lead: no theme of its own
            continue
        label_info = result.themes[label]
        theme = session.get(Theme, mapping[label]) if label in mapping else None
        if theme is None:
            theme = Theme(label=label_info.title, status="new")
            session.add(theme)
            session.flush()
            created_ids.append(theme.id)
        if theme.id not in described:
            described.add(theme.id)
            _describe(theme, label, result, texts, embeddings[rows_of_label.get(label, [])])
        # Each membership's score is the item's cosine to its cluster's centre: the triage queue lists the
        # items the clustering placed with least confidence.
        centre = result.centroids.get(label)
        member_ids = sorted(new_members[label])
        scores = (embeddings[[row_of[item_id] for item_id in member_ids]] @ centre).tolist() if centre is not None \
            else [None] * len(member_ids)
        memberships += [{"item_id": item_id, "theme_id": theme.id, "source": MembershipSource.MACHINE.value,
                         "score": score} for item_id, score in zip(member_ids, scores, strict=True)]
        mapping[label] = theme.id
    insert_memberships(session, memberships)
    return created_ids


def insert_memberships(session: Session, rows: list[dict[str, object]]) -> None:
    """Many memberships in executemany batches: one ORM object per item costs minutes at a million items."""
    session.flush()  # the themes they point at exist first
    for start in range(0, len(rows), MEMBERSHIP_BATCH):
        session.execute(insert(ThemeMembership), rows[start:start + MEMBERSHIP_BATCH])


def _rows_by_label(labels: np.ndarray) -> dict[int, np.ndarray]:
    """{label: the rows that hold it}, from one sort instead of one pass over every row per label."""
    if len(labels) == 0:
        return {}
    order = np.argsort(labels, kind="stable")
    values, starts = np.unique(labels[order], return_index=True)
    return {int(value): rows for value, rows in zip(values.tolist(), np.split(order, starts[1:]), strict=True)}


def _describe(theme: Theme, label: int, result: ThemeResult, texts: list[str], members: np.ndarray) -> None:
    label_info = result.themes[label]
    if not theme.label_locked:
        theme.label = label_info.title
    if theme.status == "archived":
        theme.status = "new"
    theme.keywords = label_info.keywords
    theme.quotes = [texts[i] for i in label_info.quote_indices]
    theme.centroid = result.centroids[label].tobytes()
    theme.radius = float(np.quantile(members @ result.centroids[label], RADIUS_QUANTILE))


def _archive_unkept(session: Session, kept_ids: set[int]) -> None:
    for theme in session.scalars(select(Theme).where(Theme.id.not_in(kept_ids) if kept_ids else true())
                                 .where(Theme.status != "merged")):
        theme.status = "archived"  # kept, not deleted: its tickets and history still point at it


def _keep_merged_together(session: Session, mapping: dict[int, int], new_members: dict[int, set[int]],
                          old_members: dict[int, set[int]]) -> None:
    """A person merged themes, so the clusters that split them apart again all go back to the merged one."""
    targets = set(session.scalars(select(Theme.merged_into_id).where(Theme.merged_into_id.is_not(None))))
    for label, members in new_members.items():
        if label in mapping:
            continue
        for theme_id in targets:
            if theme_id is not None and len(members & old_members.get(theme_id, set())) * 2 >= len(members):
                mapping[label] = final_theme(session, theme_id).id
                break


def _keep_out_of_rejected(new_members: dict[int, set[int]], mapping: dict[int, int],
                          forbidden: dict[int, set[int]]) -> None:
    """A person rejected putting these items in these themes (core/themes/suggestions.py): an item whose
    cluster stands for such a theme leaves it (``_place_left_overs`` then finds it the nearest other)."""
    for label, members in new_members.items():
        members.difference_update([member for member in members if mapping.get(label) in forbidden.get(member, ())])


def _place_left_overs(item_ids: list[int], embeddings: np.ndarray, result: ThemeResult,
                      new_members: dict[int, set[int]], mapping: dict[int, int], forbidden: dict[int, set[int]],
                      placed: set[int]) -> tuple[int, int]:
    """Items still in no cluster join the nearest one a person did not reject them for: (how many joined,
    how many stay in none).

    Why: every item should count somewhere, and a left-over's nearest theme is where a PM looks for it. Its
    membership score is its low cosine to that centre, so the triage queue lists it as "unsure" (least
    confident first) for a person to keep or move; the clusters' centres, names and quotes come from the
    clustering alone, so these items change none of them. Between re-clusterings, arriving items far from
    every theme still wait for a new theme to emerge (core/themes/incremental.py).
    """
    labels = [label for label in sorted(result.centroids) if new_members.get(label)]
    placed = placed.union(*new_members.values())
    rows = [row for row, item_id in enumerate(item_ids) if item_id not in placed]
    if not labels or not rows:
        return 0, len(rows)
    centres = np.vstack([result.centroids[label] for label in labels]).astype(np.float32)
    joined = 0
    for start in range(0, len(rows), LEFT_OVER_CHUNK):
        chunk = rows[start:start + LEFT_OVER_CHUNK]
        similarities = embeddings[chunk] @ centres.T
        for row, scores in zip(chunk, similarities, strict=True):
            refused = forbidden.get(item_ids[row])
            ranked = np.argsort(-scores).tolist() if refused else [int(scores.argmax())]
            label = next((labels[column] for column in ranked if mapping.get(labels[column]) not in (refused or ())),
                         None)
            if label is not None:
                new_members[label].add(item_ids[row])
                joined += 1
    return joined, len(rows) - joined


def _steer_by_people(settings: Settings, item_ids: list[int], embeddings: np.ndarray, clusters: np.ndarray,
                     human: dict[int, int], mapping: dict[int, int]) -> dict[int, int]:
    """{item id: theme id} for items that follow where people placed others (clustering/steering.py).

    A placement is a move when the person's theme is not the one the item's cluster now stands for.
    """
    row_of = {item_id: row for row, item_id in enumerate(item_ids)}
    placed = {row_of[item_id]: theme_id for item_id, theme_id in human.items() if item_id in row_of}
    moves = {row: theme_id for row, theme_id in placed.items() if mapping.get(int(clusters[row])) != theme_id}
    followers = steer(embeddings, clusters, placed, moves, set(mapping.values()),
                      settings.steer_similarity, settings.steer_margin)
    return {item_ids[row]: theme_id for row, theme_id in followers.items()}
