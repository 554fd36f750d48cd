"""Large spreadsheets made fast, for benchmarks/formats.py and the memory tests: a real
.xlsx written by openpyxl, its one sheet's XML then replaced by `rows` generated rows
streamed into the zip (openpyxl alone writes about 20,000 rows a second; this, a few
hundred thousand). Numbers, repeated words (shared strings) and, with `unique`, a text
ID per row, so the file compresses about as a real one does (10-20:1).

    python benchmarks/big_sheets.py OUT.xlsx ROWS [--unique]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

WORDS = ["North", "South", "East", "West", "Central", "Online", "Retail", "Wholesale"]
PRODUCTS = [f"Product {chr(65 + i)}" for i in range(26)]
SHEET = "xl/worksheets/sheet1.xml"
SST_TYPE = (
    '<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
)
SST_REL = (
    '<Relationship Id="rIdSst" Target="sharedStrings.xml" Type="http://schemas.'
    'openxmlformats.org/officeDocument/2006/relationships/sharedStrings"/>'
)
NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def _skeleton(path: Path, strings: list[str]) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Orders"
    sheet.append(strings)  # every shared string, so the table holds them all
    book.save(path)


def make_xlsx(path: Path, rows: int, unique: bool = False, seed: int = 7) -> Path:
    """An .xlsx of one sheet `Orders`: a header, then `rows` rows of 8 columns."""
    header = ["Order", "Region", "Channel", "Product", "Quantity", "Price", "Total", "Note"]
    strings = header + WORDS + PRODUCTS
    index = {s: i for i, s in enumerate(strings)}
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.xlsx"
        _skeleton(base, strings)
        with (
            zipfile.ZipFile(base) as src,
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as out,
        ):
            for info in src.infolist():
                if info.filename == SHEET:
                    continue
                data = src.read(info).decode()
                if info.filename == "[Content_Types].xml":
                    data = data.replace("</Types>", SST_TYPE + "</Types>")
                elif info.filename == "xl/_rels/workbook.xml.rels":
                    data = data.replace("</Relationships>", SST_REL + "</Relationships>")
                out.writestr(info.filename, data)
            out.writestr("xl/sharedStrings.xml", _shared(strings))
            with out.open(SHEET, "w", force_zip64=True) as sheet:
                head = f'<?xml version="1.0" encoding="UTF-8"?>\n<worksheet {NS}>'
                head += f'<dimension ref="A1:H{rows + 1}"/><sheetData>'  # as Excel writes
                sheet.write(head.encode())
                sheet.write(_row(1, [("s", index[h]) for h in header]))
                for r in range(2, rows + 2):
                    qty = rng.randint(1, 500)
                    price = round(rng.uniform(0.5, 999.0), 2)
                    cells = [
                        ("str", f"ORD-{r:08d}-{rng.randint(0, 99999):05d}") if unique else ("n", r),
                        ("s", index[rng.choice(WORDS[:5])]),
                        ("s", index[rng.choice(WORDS[5:])]),
                        ("s", index[rng.choice(PRODUCTS)]),
                        ("n", qty),
                        ("n", price),
                        ("n", round(qty * price, 2)),
                        ("str", f"batch {rng.randint(1, 9999)}"),
                    ]
                    sheet.write(_row(r, cells))
                sheet.write(b"</sheetData></worksheet>")
    return path


def _shared(strings: list[str]) -> bytes:
    items = "".join(f"<si><t>{escape(s)}</t></si>" for s in strings)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<sst {NS} count="{len(strings)}" '
        f'uniqueCount="{len(strings)}">{items}</sst>'
    ).encode()


def _row(number: int, cells: list[tuple[str, object]]) -> bytes:
    parts = [f'<row r="{number}">']
    for column, (kind, value) in enumerate(cells):
        ref = f"{chr(65 + column)}{number}"
        if kind == "s":
            parts.append(f'<c r="{ref}" t="s"><v>{value}</v></c>')
        elif kind == "str":
            parts.append(f'<c r="{ref}" t="inlineStr"><is><t>{escape(str(value))}</t></is></c>')
        else:
            parts.append(f'<c r="{ref}"><v>{value}</v></c>')
    parts.append("</row>")
    return "".join(parts).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("rows", type=int)
    parser.add_argument("--unique", action="store_true", help="a text ID per row")
    args = parser.parse_args()
    make_xlsx(args.out, args.rows, args.unique)
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
