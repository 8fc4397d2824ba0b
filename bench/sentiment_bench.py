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

from bench.cluster_bench import publish
from bench.sentiment_fit import embed_cached
from core.types import ItemDraft
from plugins import kind as kind_rules
from plugins import sentiment as vader
from plugins import sentiment_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TWEETEVAL = SHARED / "sentiment" / "tweeteval_test.csv"
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
    "Training sentences: plugins/sentiment_data/sentences.txt (hand-written) and templates.txt (30 templates x "
    "26 product topics), written for feedbackloop, Apache-2.0; no public corpus was used for fitting "
    "(TweetEval's licence does not cover shipping weights learnt from tweets). The regularisation was chosen on "
    "tweeteval_val.csv; the test split is only measured. Kind on Banking77: its intents that report a "
    "failure (card_not_working, declined_*, failed_transfer, transaction_charged_twice...) count as complaints, "
    "those asking for information (exchange_rate, country_support, top_up_limits...) as questions; the rest "
    "are left out. The model is opt-in (FEEDBACKLOOP_ENRICHMENT_MODEL=minilm-lr): per-item figures vary a lot "
    "with the load of this shared machine.",
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


def sentiment_section() -> list[str]:
    with TWEETEVAL.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    texts, truth = [r["text"] for r in rows], [r["sentiment"] for r in rows]
    vader_labels = [vader_label(vader.sentiment_of(t)) for t in texts]
    model_labels = [label for _, label, _ in model_predictions(texts, "tweeteval-test")]
    labels = list(sentiment_model.SENTIMENTS)
    acc = {name: float(np.mean(np.array(p) == np.array(truth))) for name, p in
           (("VADER", vader_labels), ("model", model_labels))}
    lines = [f"TweetEval sentiment test, {len(rows)} tweets: accuracy VADER **{acc['VADER']:.3f}**, "
             f"model **{acc['model']:.3f}** ({100 * (acc['model'] - acc['VADER']):+.1f} points; "
             "target: +10).", "",
             "| method | accuracy | macro recall | " + " | ".join(f"{c} recall / F1" for c in labels) + " |",
             "|---|---|---|" + "---|" * len(labels)]
    for name, predicted in (("VADER (compound +-0.05)", vader_labels), ("MiniLM + VADER scores, LR", model_labels)):
        stats = per_class(truth, predicted, labels)
        lines.append(f"| {name} | {np.mean(np.array(predicted) == np.array(truth)):.3f} | "
                     f"{np.mean([r for r, _ in stats.values()]):.3f} | "
                     + " | ".join(f"{stats[c][0]:.3f} / {stats[c][1]:.3f}" for c in labels) + " |")
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
    for name, rows, tag in zip(("Banking77 test, intents mapped", "held-out sentences (ours)"), kind_rows(),
                               ("banking-kind", "heldout-kind"), strict=True):
        texts, truth = [t for t, _ in rows], [k for _, k in rows]
        labels = sorted(set(truth))
        rules = [kind_rules.classify(t) for t in texts]
        model = [k for _, _, k in model_predictions(texts, tag)]
        lines.append(f"| {name} | {len(rows)} | {', '.join(labels)} | {macro_f1(truth, rules, labels):.3f} | "
                     f"**{macro_f1(truth, model, labels):.3f}** |")
    return lines


def throughput_section(count: int = 300) -> list[str]:
    with TWEETEVAL.open(encoding="utf-8") as f:
        texts = [r["text"] for _, r in zip(range(count), csv.DictReader(f), strict=False)]
    os.environ[sentiment_model.MODEL_ENV] = sentiment_model.MODEL_NAME  # the model is opt-in
    sentiment_model.enrich_texts(["warm-up"])  # the model and the embedder load once per process
    vader.sentiment_of("warm-up")
    timings = {}
    for name, plugins in (("VADER + rules (fallback)", (kind_rules, vader)),
                          ("model (MiniLM pass + 2 LRs)", (sentiment_model,))):
        start = time.perf_counter()
        for text in texts:
            item = ItemDraft(text=text)
            for plugin in plugins:
                plugin.enrich_item(item)
        timings[name] = (time.perf_counter() - start) / count
        assert item.kind is not None and item.sentiment is not None
    start = time.perf_counter()
    sentiment_model.enrich_texts(texts)
    batched = (time.perf_counter() - start) / count
    return ["| enrichment | ms per item |", "|---|---|",
            *(f"| {name}, one item at a time | {1000 * s:.2f} |" for name, s in timings.items()),
            f"| model, {count} items in one call (batched MiniLM) | {1000 * batched:.2f} |"]


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
        *sentiment_section(), "", *kind_section(), "", *throughput_section(), "", *NOTES, "",
    ])
    publish(section, not args.no_write)


if __name__ == "__main__":
    main()
