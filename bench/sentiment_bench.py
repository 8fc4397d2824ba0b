"""Sentiment and kind: the shipped MiniLM model (plugins/sentiment_model.py) against VADER and the rules.

    PYTHONPATH=. HF_HUB_OFFLINE=1 python -m bench.sentiment_bench [--no-write]

Sentiment: TweetEval's sentiment test split (../shared/data/sentiment/tweeteval_test.csv, never used for
fitting). Kind: Banking77 test (CC BY 4.0) with its intents mapped to complaint or question (KIND_INTENTS),
and bench/sentiment_kind_heldout.txt (all four kinds, written apart from the training sentences).
Throughput: one item at a time through each plugin's enrich_item, as intake calls it.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import sentiment_fit
from bench.cluster_bench import publish
from bench.sentiment_fit import embed_cached
from core.settings import Settings
from core.types import ItemDraft
from plugins import kind as kind_rules
from plugins import sentiment as vader
from plugins import sentiment_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TWEETEVAL = SHARED / "sentiment" / "tweeteval_test.csv"
# TweetEval's validation split: candidates are measured on it to choose among them, never fitted on it.
TWEETEVAL_VAL = SHARED / "sentiment" / "tweeteval_val.csv"
BANKING = SHARED / "banking77" / "test.csv"
HELDOUT = Path(__file__).resolve().parent / "sentiment_kind_heldout.txt"
# Banking77 intents whose every message reports something that went wrong, or asks for information.
_COMPLAINTS = (
    "card_not_working contactless_not_working declined_card_payment declined_transfer declined_cash_withdrawal "
    "failed_transfer top_up_failed transaction_charged_twice wrong_amount_of_cash_received "
    "card_payment_wrong_exchange_rate wrong_exchange_rate_for_cash_withdrawal virtual_card_not_working "
    "card_swallowed extra_charge_on_statement top_up_reverted unable_to_verify_identity Refund_not_showing_up "
    "balance_not_updated_after_bank_transfer balance_not_updated_after_cheque_or_cash_deposit pin_blocked")
_QUESTIONS = (
    "exchange_rate fiat_currency_support card_delivery_estimate age_limit top_up_limits "
    "supported_cards_and_currencies visa_or_mastercard disposable_card_limits country_support "
    "apple_pay_or_google_pay atm_support why_verify_identity transfer_timing exchange_charge top_up_by_card_charge "
    "cash_withdrawal_charge receiving_money getting_virtual_card order_physical_card get_physical_card "
    "get_disposable_virtual_card change_pin edit_personal_details activate_my_card")
KIND_INTENTS = {**dict.fromkeys(_COMPLAINTS.split(), "complaint"), **dict.fromkeys(_QUESTIONS.split(), "question")}


NOTES = [
    "Training sentences: plugins/sentiment_data/ (sentences.txt, general.txt and everyday.txt hand-written, "
    "templates.txt 30 templates x 26 product topics; SOURCE.md), written for feedbackloop, Apache-2.0; no public "
    "corpus is used for fitting (TweetEval's licence does not cover shipping weights learnt from tweets). "
    "Choice: bench/sentiment_fit.py fits every candidate on all our sentences and measures it on TweetEval's "
    "validation split (2,000 tweets, measured only, never fitted on); it keeps the incumbent (lr-c0.5) unless "
    "another beats it there by more than one standard error. Before everyday.txt, candidates were chosen on a "
    "held-out fifth of our sentences; with everyday.txt that rule would have shipped mlp-32 (0.589 on val), "
    "so the choice moved to val, before any TweetEval test figure of the new training set was seen. "
    "Candidates measured on TweetEval test: 13 (configuration, training set) pairs before everyday.txt (earlier "
    "runs of this bench), and the 12 in the table above after it. The last four (branch sent3) change the "
    "training or the decision, not the shipped data: equal-priors divides the probabilities by the class mix of "
    "our sentences (arbitrary); posts adds posts.txt (215 hand-written social posts with @user mentions, "
    "hashtags, dates); vader-lexicon adds the words of VADER's lexicon (vaderSentiment, MIT) with |mean "
    "valence| >= 1 as one-word rows of weight 0.1, labelled by its sign; user-prefix adds every hand-written "
    "sentence again opened by '@user ', as tweets are. None beats the incumbent on val by one standard error "
    "(about 0.011 on 2,000 tweets), so none is shipped.",
    "Kind on Banking77: its intents that report a failure (card_not_working, declined_*, failed_transfer, "
    "transaction_charged_twice...) count as complaints, those asking for information (exchange_rate, "
    "country_support, top_up_limits...) as questions; the rest are left out. It is the only public labelled set "
    "used for kind, and it has no ideas or praise; the four-kind set is ours (written apart from the training "
    "sentences, never fitted on).",
    "Throughput: intake keeps VADER and the rules; the model runs in the worker right after embed_pending "
    "(enrich_embedded hook), on the vectors it has just computed, so its cost is the re-scoring row above, "
    "not an embedding. Per-item figures vary with the load of this shared machine (uptime above).",
]


def vader_label(score: float) -> str:
    return "positive" if score >= 0.05 else "negative" if score <= -0.05 else "neutral"


def per_class(truth: list[str], predicted: list[str], labels: list[str]) -> dict[str, tuple[float, float]]:
    """label -> (recall, F1)."""
    out = {}
    t, p = np.array(truth), np.array(predicted)
    for label in labels:
        tp = float(np.sum((t == label) & (p == label)))
        recall = tp / max(1.0, float(np.sum(t == label)))
        precision = tp / max(1.0, float(np.sum(p == label)))
        out[label] = (recall, 2 * precision * recall / (precision + recall) if tp else 0.0)
    return out


def macro_f1(truth: list[str], predicted: list[str], labels: list[str]) -> float:
    return float(np.mean([f1 for _, f1 in per_class(truth, predicted, labels).values()]))


def model_predictions(texts: list[str], tag: str) -> list[tuple[float, str, str]]:
    openings = [t[:vader.SENTIMENT_PREFIX_CHARS] for t in texts]
    result = sentiment_model.enrich_texts(texts, embed_cached(openings, tag))
    assert result is not None, "plugins/sentiment_data/model.npz is missing: run python -m bench.sentiment_fit"
    return result


def accuracy(truth: list[str], predicted: list[str]) -> float:
    return float(np.mean(np.array(predicted) == np.array(truth)))


def tweeteval(path: Path = TWEETEVAL) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["sentiment"] for r in rows]


def sentiment_section() -> list[str]:
    texts, truth = tweeteval()
    vader_labels = [vader_label(vader.sentiment_of(t)) for t in texts]
    model_labels = [label for _, label, _ in model_predictions(texts, "tweeteval-test")]
    labels = list(sentiment_model.SENTIMENTS)
    acc = {"VADER": accuracy(truth, vader_labels), "model": accuracy(truth, model_labels)}
    lines = [f"TweetEval sentiment test, {len(texts)} tweets: accuracy VADER **{acc['VADER']:.3f}**, "
             f"model **{acc['model']:.3f}** ({100 * (acc['model'] - acc['VADER']):+.1f} points; "
             "target: +10).", "",
             "| method | accuracy | macro recall | " + " | ".join(f"{c} recall / F1" for c in labels) + " |",
             "|---|---|---|" + "---|" * len(labels)]
    for name, predicted in (("VADER (compound +-0.05)", vader_labels), ("shipped model", model_labels)):
        stats = per_class(truth, predicted, labels)
        lines.append(f"| {name} | {accuracy(truth, predicted):.3f} | "
                     f"{np.mean([r for r, _ in stats.values()]):.3f} | "
                     + " | ".join(f"{stats[c][0]:.3f} / {stats[c][1]:.3f}" for c in labels) + " |")
    return lines


def tweet_features(path: Path, tag: str) -> tuple[np.ndarray, list[str]]:
    """(MiniLM embedding + VADER's four scores, true label) of each tweet of a TweetEval split."""
    texts, truth = tweeteval(path)
    openings = [t[:vader.SENTIMENT_PREFIX_CHARS] for t in texts]
    return np.hstack([embed_cached(openings, tag), sentiment_model.vader_scores(texts)]), truth


def candidates_section() -> list[str]:
    """Every candidate of bench/sentiment_fit.py, fitted on our sentences: accuracy on our held-out sentences
    and on TweetEval's validation split (what it is chosen on), and on TweetEval test (measured only)."""
    rows = sentiment_fit.training_rows()
    chosen, held_out, _ = sentiment_fit.compare(rows, sentiment_fit.features_of([row.text for row in rows], "train"))
    splits = {"val": tweet_features(TWEETEVAL_VAL, "tweeteval-val"),
              "test": tweet_features(TWEETEVAL, "tweeteval-test")}
    lines = ["| candidate (bench/sentiment_fit.py) | held-out accuracy (our sentences) | TweetEval val accuracy / "
             "macro recall | TweetEval test accuracy |", "|---|---|---|---|"]
    for name, classifier in sentiment_fit.candidate_classifiers().items():
        scores = {}
        for split, (features, truth) in splits.items():
            predicted = [sentiment_model.SENTIMENTS[i] for i in np.argmax(classifier.probabilities(features), axis=1)]
            stats = per_class(truth, predicted, list(sentiment_model.SENTIMENTS))
            scores[split] = (accuracy(truth, predicted), float(np.mean([r for r, _ in stats.values()])))
        mark = " (chosen, shipped)" if name == chosen else ""
        lines.append(f"| {name}{mark} | {held_out[name]:.3f} | {scores['val'][0]:.3f} / {scores['val'][1]:.3f} | "
                     f"{scores['test'][0]:.3f} |")
    return lines


def kind_rows() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    with BANKING.open(encoding="utf-8") as f:
        banking = [(r["text"], KIND_INTENTS[r["category"]]) for r in csv.DictReader(f) if r["category"] in KIND_INTENTS]
    heldout = []
    for line in HELDOUT.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            kind, text = line.split("|", 1)
            heldout.append((text, kind))
    return banking, heldout


def kind_section() -> list[str]:
    lines = ["| kind test set | items | labels | rules macro-F1 | model macro-F1 |", "|---|---|---|---|---|"]
    names = ("Banking77 test (public, CC BY 4.0), intents mapped", "held-out sentences (ours, not public)")
    for name, rows, tag in zip(names, kind_rows(),
                               ("banking-kind", "heldout-kind"), strict=True):
        texts, truth = [t for t, _ in rows], [k for _, k in rows]
        labels = sorted(set(truth))
        rules = [kind_rules.classify(t) for t in texts]
        model = [k for _, _, k in model_predictions(texts, tag)]
        lines.append(f"| {name} | {len(rows)} | {', '.join(labels)} | {macro_f1(truth, rules, labels):.3f} | "
                     f"**{macro_f1(truth, model, labels):.3f}** |")
    return lines


def throughput_section(count: int = 300) -> list[str]:
    texts = tweeteval()[0][:count]
    settings = Settings(enrichment_model="minilm-lr")
    embedder = sentiment_model._embedder()
    embedder.embed(["warm-up"])  # the model and the embedder load once per process
    sentiment_model.enrich_texts(["warm-up"])
    start = time.perf_counter()
    drafts = []
    for text in texts:  # as intake calls them: one item at a time
        item = ItemDraft(text=text)
        for plugin in (kind_rules, vader):
            plugin.enrich_item(item)
        drafts.append(item)
    intake = (time.perf_counter() - start) / count
    start = time.perf_counter()
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    embedding = (time.perf_counter() - start) / count
    changed = [(d.sentiment, d.kind) for d in drafts]
    start = time.perf_counter()
    sentiment_model.enrich_embedded(items=drafts, embeddings=vectors, embedder="minilm", settings=settings)
    rescoring = (time.perf_counter() - start) / count
    assert changed != [(d.sentiment, d.kind) for d in drafts]
    return ["| step | ms per item |", "|---|---|",
            f"| intake enrichment: VADER + rules, one item at a time | {1000 * intake:.3f} |",
            f"| worker: MiniLM embedding, {count} items in one call (done anyway, for themes) | "
            f"{1000 * embedding:.2f} |",
            f"| worker: re-scoring from those embeddings (`enrich_embedded`), {count} items in one call | "
            f"{1000 * rescoring:.3f} |"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    section = "\n".join([
        "## Sentiment and kind", "",
        f"`python -m bench.sentiment_bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores (`uptime`: {load}). Model: plugins/sentiment_model.py, fitted by "
        "bench/sentiment_fit.py on plugins/sentiment_data/ only (sentences written for the project).", "",
        *sentiment_section(), "", *candidates_section(), "", *kind_section(), "", *throughput_section(), "",
        *(line for note in NOTES for line in (note, "")),
    ])
    publish(section, not args.no_write)


if __name__ == "__main__":
    main()
