"""Extraction throughput of the mail, notebook, table, data and feed readers
(indexers/formats/{mail,notebook,tabular,structured,feeds}.py) against the library each
one uses, called directly on the same files the plain way.

Goal: pocketrag / direct >= 0.9 for each format (the structure kept, the hostile-file
guards and the streaming cost at most a tenth). "Direct" is the library's usual call and
the least that gets the same text out: `email.parser.BytesParser(policy=default)` and
`get_body()`; `extract_msg.openMsg` (attachments loaded, its default); `json.loads` and a
walk of the cells; charset-normalizer on the same sample and `csv.reader`; `json.loads`
or `yaml.safe_load` and a walk collecting `path: value`; `defusedxml.ElementTree.parse`
and each item's title and HTML text. pocketrag's side is `indexers.loaders.iter_documents`,
its documents drained (no chunking, no embedding). Files are generated (seeded), each
timed `--rounds` times interleaved with its direct reading; the best round counts.

    python benchmarks/formats_data.py [--rounds 5] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

WORDS = [
    "harbour", "ferry", "tide", "lantern", "keeper", "north", "reef", "ledger", "budget",
    "crowns", "pier", "kiosk", "schedule", "storm", "beacon", "chart", "anchor", "gull",
]  # fmt: skip


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_files(work: Path, scale: float) -> dict[str, list[Path]]:
    """Seeded files of each format, about 2-20 MB each, in `work`."""
    rng = random.Random(7)
    files: dict[str, list[Path]] = {}
    n = max(int(200_000 * scale), 100)
    names = ["山田太郎", "佐藤花子", "鈴木一郎", "高橋美咲", "伊藤健"]
    for name, encoding, people in (
        ("csv-cp1252", "cp1252", ["José Müller", "Zoë Brontë", "François Côté"]),
        ("csv-shift_jis", "shift_jis", names),
    ):
        path = work / f"{name}.csv"
        with path.open("w", encoding=encoding, newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["Order", "Name", "City", "Amount", "Note"])
            for i in range(n):
                out.writerow([i, rng.choice(people), rng.choice(WORDS), i * 3, _text(rng, 6)])
        files[name] = [path]
    records = [
        {"id": i, "name": _text(rng, 2), "tags": [_text(rng, 1) for _ in range(3)],
         "address": {"city": _text(rng, 1), "zip": 10_000 + i}, "note": _text(rng, 12)}
        for i in range(max(int(40_000 * scale), 50))
    ]  # fmt: skip
    (work / "records.json").write_text(json.dumps({"records": records, "version": 3}))
    files["json"] = [work / "records.json"]
    import yaml

    (work / "config.yaml").write_text(yaml.safe_dump({"services": records[: len(records) // 8]}))
    files["yaml"] = [work / "config.yaml"]
    cells: list[dict[str, object]] = []
    for i in range(max(int(2_000 * scale), 10)):
        image = {"image/png": "iVBORw0KGgo" * 300, "text/plain": "<Figure>"}
        outputs = [
            {"output_type": "stream", "name": "stdout", "text": _text(rng, 20)},
            {"output_type": "display_data", "metadata": {}, "data": image},
        ]
        cells.append({"cell_type": "markdown", "source": f"## Step {i}\n{_text(rng, 30)}"})
        cells.append({"cell_type": "code", "source": f"x = f({i})\nprint(x)", "outputs": outputs})
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    (work / "study.ipynb").write_text(json.dumps(notebook))
    files["ipynb"] = [work / "study.ipynb"]
    picture = '<img srcset="a.jpg 1x, b.jpg 2x" src="a.jpg">'
    items = "".join(
        f"<item><title>Note {i}</title><link>https://news.example/{i}</link><pubDate>"
        f"Mon, 03 Mar 2025 10:00:00 GMT</pubDate><description><![CDATA[<div>{picture}<p>"
        f"{_text(rng, 80)}</p><p>{_text(rng, 40)}</p></div>]]></description></item>"
        for i in range(max(int(8_000 * scale), 20))
    )
    feed = f'<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>{items}'
    (work / "news.rss").write_text(feed + "</channel></rss>")
    files["rss"] = [work / "news.rss"]
    mails = []
    for i in range(max(int(300 * scale), 5)):
        message = EmailMessage()
        message["From"], message["To"] = "Alice <alice@example.org>", "Bob <bob@example.org>"
        message["Subject"], message["Date"] = f"Report {i}", "Mon, 03 Mar 2025 10:00:00 +0000"
        message.set_content(_text(rng, 400))
        message.add_alternative(f"<p>{_text(rng, 400)}</p>", subtype="html")
        message.add_attachment(rng.randbytes(60_000), "application", "pdf", filename=f"r{i}.pdf")
        path = work / f"mail{i}.eml"
        path.write_bytes(message.as_bytes())
        mails.append(path)
    files["eml"] = mails
    from format_fixtures import write_msg

    headers = "From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\nSubject: x\r\n\r\n"
    files["msg"] = [
        write_msg(
            work / f"m{i}.msg",
            f"Report {i}",
            _text(rng, 400),
            headers,
            attachments=((f"r{i}.pdf", rng.randbytes(60_000)),),
        )  # fmt: skip
        for i in range(max(int(100 * scale), 5))
    ]
    return files


def ours(path: Path) -> int:
    from indexers.loaders import iter_documents

    return sum(len(d.text) for d in iter_documents(path, []))


def _walk(value: object, path: str, out: list[str]) -> None:
    stack = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(item))
        elif item is not None:
            out.append(f"{where}: {item}")


def direct_csv(path: Path) -> int:
    from charset_normalizer import from_bytes

    with path.open("rb") as handle:
        sample = handle.read(256 * 1024)
    encoding = "utf-8" if sample.isascii() else from_bytes(sample).best().encoding
    with path.open(encoding=encoding, errors="replace", newline="") as handle:
        return sum(len(" | ".join(row)) for row in csv.reader(handle))


def direct_json(path: Path) -> int:
    out: list[str] = []
    _walk(json.loads(path.read_text()), "", out)
    return len("\n".join(out))


def direct_yaml(path: Path) -> int:
    import yaml

    out: list[str] = []
    _walk(yaml.safe_load(path.read_text()), "", out)
    return len("\n".join(out))


def direct_ipynb(path: Path) -> int:
    notebook = json.loads(path.read_text())
    texts = []
    for cell in notebook["cells"]:
        texts.append("".join(cell["source"]))
        for out in cell.get("outputs", []):
            texts.append("".join(out.get("text") or out.get("data", {}).get("text/plain", "")))
    return len("\n\n".join(texts))


def direct_rss(path: Path) -> int:
    from defusedxml.ElementTree import parse

    from rag.core.html_text import html_to_text

    total = 0
    for item in parse(str(path)).getroot().iter("item"):
        total += len(item.findtext("title") or "")
        total += len(html_to_text(item.findtext("description") or ""))
    return total


def direct_eml(path: Path) -> int:
    with path.open("rb") as handle:
        message = BytesParser(policy=policy.default).parse(handle)
    body = message.get_body(preferencelist=("plain", "html"))
    names = [a.get_filename() or "" for a in message.iter_attachments()]
    return len(str(message["subject"])) + len(body.get_content()) + len(" ".join(names))


def direct_msg(path: Path) -> int:
    import extract_msg

    message = extract_msg.openMsg(str(path))
    try:
        names = [a.longFilename or "" for a in message.attachments]
        return len(message.subject or "") + len(message.body or "") + len(" ".join(names))
    finally:
        message.close()


DIRECT: dict[str, Callable[[Path], int]] = {
    "csv-cp1252": direct_csv, "csv-shift_jis": direct_csv, "json": direct_json,
    "yaml": direct_yaml, "ipynb": direct_ipynb, "rss": direct_rss, "eml": direct_eml,
    "msg": direct_msg,
}  # fmt: skip


def timed(read: Callable[[Path], int], paths: list[Path]) -> float:
    """Seconds to read every file of `paths` once."""
    started = time.perf_counter()
    for path in paths:
        read(path)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    import logging

    logging.getLogger("extract_msg").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="rag-bench-formats-data-") as tmp:
        files = make_files(Path(tmp), args.scale)
        for kind, paths in files.items():  # warm: imports, page cache
            ours(paths[0])
            DIRECT[kind](paths[0])
        print(f"{'format':14s} {'MB':>7s} {'pocketrag MB/s':>15s} {'direct MB/s':>12s} "
              f"{'ratio':>6s}  (goal >= 0.9)")  # fmt: skip
        for kind, paths in files.items():
            direct = DIRECT[kind]
            mine, theirs = [], []
            for _ in range(args.rounds):
                mine.append(timed(ours, paths))
                theirs.append(timed(direct, paths))
            size = sum(p.stat().st_size for p in paths) / 2**20
            ratio = min(theirs) / min(mine)
            print(f"{kind:14s} {size:7.1f} {size / min(mine):15.1f} {size / min(theirs):12.1f} "
                  f"{ratio:6.2f}{'' if ratio >= 0.9 else '  below goal'}")  # fmt: skip


if __name__ == "__main__":
    main()
