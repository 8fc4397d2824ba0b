"""The figures of bench/scale_out_bench.py as a section of bench/RESULTS.md (and on the terminal)."""

from __future__ import annotations

import argparse
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.scale_out_support import percentile


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def report(args: argparse.Namespace, events: list[tuple[float, str]], found: dict[str, Any],
           results: Path | None, section: str) -> str:
    latencies = found["latencies"]
    steady_total = len(latencies) + found["unthemed_steady"]
    # Unthemed items count as never arriving: the p95 is finite only when 95% of the steady items joined.
    padded = sorted(latencies) + [float("inf")] * found["unthemed_steady"]
    p50, p95 = percentile(padded, 0.50), percentile(padded, 0.95)
    answers = found["answers"]
    bad = {label: n for label, n in answers.items()
           if not (label.startswith(("2", "no answer")) or label == "503 Retry-After")}
    broken = sum(n for label, n in answers.items() if label.startswith("no answer"))
    lost = found["acked_missing"]
    spike_s = found["spike_s"]
    once = (lost == 0 and found["acked_stored_twice"] == 0 and found["acked_not_embedded"] == 0)
    tickets_ok = (found["themes_with_two_tickets"] == 0 and found["tickets"] == found["themes_routed"]
                  and set(found["calls_per_ticket"]) <= {1})
    waiting = found.get("not_themed_incremental", "(not measured)")
    routed, doubled = found["themes_routed"], found["themes_with_two_tickets"]
    slowest = max(latencies, default=float("nan"))
    joined50, joined95 = percentile(latencies, 0.50), percentile(latencies, 0.95)
    stages = found.get("stages") or []
    columns = [sorted(row[i] for row in stages) for i in range(3)]
    split = " / ".join(f"{percentile(column, 0.50):.2f}, {percentile(column, 0.95):.2f}"
                       for column in columns) if stages else "-"
    timeline = "; ".join(f"{at:.0f} s {event}" for at, event in events)
    answer_cells = ", ".join(f"{label}: {n}" for label, n in sorted(answers.items()))
    text = f"""{section}

`{args.command}` as root, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()},
{os.cpu_count()} cores shared with other sessions. `uptime` before: {args.uptime_before}; after: {args.uptime_after}.

Set-up: the bench's own PostgreSQL 15 cluster (port 5433, dropped afterwards) and its own RabbitMQ node
(`bench@localhost`, port 5673), so that stopping them touches no other test; two `feedbackloop serve`
processes (the sender keeps 16 keep-alive
connections to each, all taking from one queue, as a load balancer spreads them), two `feedbackloop worker`
processes on every queue (prefork, {args.concurrency} pool processes each, embedder `{args.model}` on torch, one
thread), one `feedbackloop beat` (sweeps every 2 s). Four signed `webhook` channels. The sender signs each
delivery when it sends it, resends a 503 after its `Retry-After` and a broken connection after 1 s, and
keeps every 2xx as an acknowledgement. Warm-up: {args.warmup:,} Banking77 texts dated over the past 6 days
at their sources, embedded, then re-clustered by the reclustering task; the rest is live traffic that joins
those themes by incremental assignment (new themes emerge from the waiting pool). After the drain, one
re-clustering (what beat's `FEEDBACKLOOP_BEAT_RECLUSTER_S` schedule sends; latencies are taken before it,
since it rewrites the memberships), then routing (`plan_deliveries`, then the workers
send): tickets on a ledger server that files by idempotency key.
Spike rule: `[[spike]]` with `keywords_any = ["outage"]`, threshold 10, `min_recent` 10, notices to a
second local receiver; the burst is {args.burst} deliveries of an outage topic the corpus never had.

Timeline: {timeline}.

| line | figure | target |
|---|---|---|
| deliveries acknowledged (2xx) | {found['acked']:,} | {args.items:,} |
| acknowledged but not stored / stored twice | {lost} / {found['acked_stored_twice']} | 0 / 0 |
| stored without an acknowledgement (sender gave up or never heard) | {found['stored_not_acked']} | - |
| acknowledged, not embedded | {found['acked_not_embedded']} | 0 |
| acknowledged, in no theme after incremental assignment (waiting in the pool) | {waiting} | 0 |
| acknowledged, in no theme after the final re-clustering | {found['acked_not_themed']} | 0 |
| answers by status | {answer_cells} | 2xx, 503 with Retry-After |
| other non-2xx answers | {sum(bad.values())} | 0 |
| connections broken before an answer (resent after 1 s) | {broken} | - |
| themes routed / tickets filed / themes with two tickets | {routed} / {found['tickets']} / {doubled} | equal / 0 |
| tracker calls per ticket | {dict(found['calls_per_ticket'])} | all 1 |
| steady {args.rate:.0f}/s: webhook to theme p50 / p95 / max s | {p50:.2f} / {p95:.2f} / {slowest:.2f} | p95 <= 2 |
| the same over the items that joined a theme: p50 / p95 | {joined50:.2f} / {joined95:.2f} | - |
| the same, in stages (p50, p95 s): sent to stored / stored to embedded / embedded to theme | {split} | - |
| steady items in a theme before the final re-clustering | {len(latencies)} of {steady_total} | all |
| spike notice after the burst's last delivery | {'none' if spike_s is None else f'{spike_s:.2f} s'} | <= 5 s |

Verdicts: stored once and embedded {verdict(once)}; themed {verdict(found['acked_not_themed'] == 0)};
answers {verdict(not bad)}; one ticket per theme {verdict(tickets_ok)}; p95 {verdict(p95 <= 2.0)};
spike {verdict(spike_s is not None and spike_s <= 5.0)}. Burst items' themes: {found['burst_themes']};
spike alerts: {found['alerts']}. Items in no theme at the end (first 8 by text): {found['unthemed_examples']}.
"""
    if results is not None:
        current = results.read_text() if results.exists() else "# Benchmark results\n"
        start = current.find(section)
        if start >= 0:
            end = current.find("\n## ", start + 1)
            current = current[:start] + current[end + 1:] if end >= 0 else current[:start]
        results.write_text(current.rstrip() + "\n\n" + text)
    return text
