"""Public intent corpora of 64 and 150 intents as text,category CSVs, for ``grain_bench.py --extra``.

    python bench/intent_corpora.py CLINC_DATA_FULL_JSON HWU_KFOLD_DIR OUT_DIR

- CLINC150 (Larson et al., EMNLP 2019; github.com/clinc/oos-eval, data/data_full.json, CC BY 3.0): the
  test split's 4,500 queries of 150 intents (out-of-scope queries left out), and the validation split's 3,000.
- HWU64 (Liu et al., 2019; github.com/xliuhw/NLU-Evaluation-Data, CC BY 4.0): fold 1 of its cross-validation
  (CrossValidation/autoGeneFromRealAnno/autoGene_2018_03_22-13_01_25_169/CrossValidation/KFold_1): the
  test set's 1,076 utterances (testset/csv/*.csv) and the training set's 9,960 (trainset/*.csv), 64 intents
  named scenario_intent.

Nothing is copied into this repository: the corpora are the kind the issue's hidden ones are (60 to 150
intents), so they are measured, never tuned on alone.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        writer.writerows(rows)
    print(f"{path}: {len(rows)} rows, {len({category for _, category in rows})} categories")


def hwu_rows(files: list[Path]) -> list[tuple[str, str]]:
    rows = []
    for file in sorted(files):
        with file.open(newline="", encoding="utf-8") as handle:
            rows += [(r["answer_from_anno"], f"{r['scenario']}_{r['intent']}")
                     for r in csv.DictReader(handle, delimiter=";")]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clinc", type=Path, help="CLINC150's data/data_full.json")
    parser.add_argument("hwu", type=Path, help="HWU64's KFold_1 folder (testset/csv/ and trainset/ inside)")
    parser.add_argument("out", type=Path, help="folder for the CSVs")
    args = parser.parse_args()
    if not args.clinc.is_file():
        parser.error(f"{args.clinc}: no such file")
    if not (args.hwu / "testset" / "csv").is_dir() or not (args.hwu / "trainset").is_dir():
        parser.error(f"{args.hwu}: not HWU64's KFold_1 folder (no testset/csv/ or trainset/)")
    args.out.mkdir(parents=True, exist_ok=True)
    splits = json.loads(args.clinc.read_text(encoding="utf-8"))
    for split in ("test", "val"):
        write(args.out / f"clinc150_{split}.csv", [(text, intent) for text, intent in splits[split]])
    write(args.out / "hwu64_test.csv", hwu_rows(list((args.hwu / "testset" / "csv").glob("*.csv"))))
    write(args.out / "hwu64_train.csv", hwu_rows(list((args.hwu / "trainset").glob("*.csv"))))


if __name__ == "__main__":
    main()
