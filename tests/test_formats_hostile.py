"""Hostile Office, OpenDocument, EPUB and RTF files: each is one skip with its reason
(zip bomb, XML entity declarations, encrypted, corrupt), never a hang, a gigabyte of
memory or a stopped run; macros never run (a macro-enabled file is read as its data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_process import rag
from formats_files import (
    UNIQUE,
    flag_encrypted,
    make_docx,
    make_odf,
    make_pptx,
    make_xlsx,
    poisoned,
    rewritten,
    soffice,
    uno_encrypted,
    with_macro,
    zip_bomb_members,
    zip_bomb_ratio,
    zip_bomb_total,
)

from indexers.documents import LoadError
from indexers.formats.odf import MAX_REPEAT
from indexers.loaders import load_file

ENCRYPTED = "encrypted (password-protected)"


def reason(path: Path) -> str:
    with pytest.raises(LoadError) as caught:
        load_file(path)
    return str(caught.value)


def test_zip_bombs_are_refused_before_anything_is_inflated(tmp_path: Path) -> None:
    ratio = reason(zip_bomb_ratio(tmp_path / "ratio.docx"))
    assert ratio.startswith("zip bomb: word/document.xml inflates") and "100:1" in ratio
    members = reason(zip_bomb_members(tmp_path / "members.xlsx"))
    assert members == "zip bomb: 10,001 members (the limit is 10,000)"
    total = reason(zip_bomb_total(tmp_path / "total.epub"))
    assert total == "zip bomb: 520 MiB once inflated (the limit is 512 MiB)"


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("originals")
    return {
        "docx": make_docx(folder / "report.docx"),
        "pptx": make_pptx(folder / "deck.pptx"),
        "xlsx": make_xlsx(folder / "book.xlsx"),
        "odt": make_odf(
            folder / "note.odt",
            "<text:h text:outline-level='1'>Hi</text:h><text:p>Body text</text:p>",
        ),
    }


PARTS = {
    "docx": "word/document.xml",
    "pptx": "ppt/slides/slide1.xml",
    "xlsx": "xl/worksheets/sheet2.xml",
    "odt": "content.xml",
}


@pytest.mark.parametrize("kind", sorted(PARTS))
def test_billion_laughs_is_refused(tmp_path: Path, originals: dict, kind: str) -> None:
    bomb = poisoned(originals[kind], tmp_path / f"laughs.{kind}", PARTS[kind])
    assert reason(bomb) == f"XML entity declarations (refused, in {PARTS[kind]})"


@pytest.mark.parametrize("kind", sorted(PARTS))
def test_billion_laughs_past_the_scanned_prolog_is_refused_by_the_parser(
    tmp_path: Path, originals: dict, kind: str
) -> None:
    """70 KiB of comment first hides the DTD from the 64 KiB scan: the parsers refuse it
    themselves (lxml's amplification limit for python-docx/-pptx, defusedxml for openpyxl
    and OpenDocument), as one skip, in milliseconds, not gigabytes of lol."""
    bomb = poisoned(originals[kind], tmp_path / f"deep.{kind}", PARTS[kind], padding=70_000)
    assert reason(bomb).startswith("corrupt: not a readable ")


def test_billion_laughs_in_an_epub_is_refused(tmp_path: Path) -> None:
    from test_formats_documents import make_epub

    book = make_epub(tmp_path / "guide.epub")
    assert reason(poisoned(book, tmp_path / "laughs.epub", "EPUB/text/ch2.xhtml")) == (
        "XML entity declarations (refused, in EPUB/text/ch2.xhtml)"
    )
    deep = poisoned(book, tmp_path / "deep.epub", "EPUB/content.opf", padding=70_000)
    assert reason(deep).startswith("corrupt: not a readable EPUB")


def test_encrypted_office_open_xml_files(tmp_path: Path, originals: dict) -> None:
    ooxml = pytest.importorskip("msoffcrypto.format.ooxml")
    for kind in ("docx", "xlsx", "pptx"):
        target = tmp_path / f"locked.{kind}"
        with originals[kind].open("rb") as plain, target.open("wb") as out:
            ooxml.OOXMLFile(plain).encrypt("secret", out)
        assert reason(target) == ENCRYPTED, kind


def test_encrypted_xls_odt_and_ods_saved_by_libreoffice(tmp_path: Path, originals: dict) -> None:
    from formats_files import make_xlsx as book

    xlsx = book(tmp_path / "book.xlsx")
    jobs = [
        (xlsx, tmp_path / "locked.xls", "MS Excel 97"),
        (xlsx, tmp_path / "locked.ods", "calc8"),
        (originals["docx"], tmp_path / "locked.odt", "writer8"),
    ]
    uno_encrypted(jobs, tmp_path / "profile")
    for _, target, _ in jobs:
        assert reason(target) == ENCRYPTED, target.name


def test_encrypted_by_manifest_zip_flag_or_drm(tmp_path: Path, originals: dict) -> None:
    odt = make_odf(tmp_path / "locked.odt", "<text:p>x</text:p>", encrypted=True)
    assert reason(odt) == ENCRYPTED
    flagged = rewritten(originals["docx"], tmp_path / "flagged.docx", {})
    assert reason(flag_encrypted(flagged, "word/document.xml")) == ENCRYPTED
    from test_formats_documents import make_epub

    book = make_epub(tmp_path / "guide.epub")
    adobe = (
        '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
        'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
        '<enc:EncryptionMethod Algorithm="{}"/><enc:CipherData><enc:CipherReference '
        'URI="EPUB/text/ch1.xhtml"/></enc:CipherData></enc:EncryptedData></encryption>'
    )
    aes = adobe.format("http://www.w3.org/2001/04/xmlenc#aes128-cbc").encode()
    drm = rewritten(book, tmp_path / "drm.epub", {"META-INF/encryption.xml": aes})
    assert reason(drm) == "encrypted (DRM)"
    fonts = adobe.format("http://www.idpf.org/2008/embedding").encode()  # obfuscated fonts
    ok = rewritten(book, tmp_path / "fonts.epub", {"META-INF/encryption.xml": fonts})
    assert len(load_file(ok).documents) == 3


def test_macro_enabled_files_are_read_as_data_and_their_macros_never_leave_the_zip(
    tmp_path: Path, originals: dict
) -> None:
    ooxml = "application/vnd.openxmlformats-officedocument."
    cases = {
        "docm": (
            originals["docx"],
            ooxml + "wordprocessingml.document.main+xml",
            "application/vnd.ms-word.document.macroEnabled.main+xml",
            "word/vbaProject.bin",
            UNIQUE["docx"],
        ),
        "xlsm": (
            originals["xlsx"],
            ooxml + "spreadsheetml.sheet.main+xml",
            "application/vnd.ms-excel.sheet.macroEnabled.main+xml",
            "xl/vbaProject.bin",
            UNIQUE["sheet"],
        ),
        "pptm": (
            originals["pptx"],
            ooxml + "presentationml.presentation.main+xml",
            "application/vnd.ms-powerpoint.presentation.macroEnabled.main+xml",
            "ppt/vbaProject.bin",
            UNIQUE["slide"],
        ),
    }
    for suffix, (src, main, macro, part, word) in cases.items():
        path = with_macro(src, tmp_path / f"macro.{suffix}", main, macro, part)
        text = "".join(d.text for d in load_file(path).documents)
        assert word in text, suffix
        assert "AutoOpen" not in text and "calc.exe" not in text, suffix


def test_corrupt_files_are_one_skip_each(tmp_path: Path, originals: dict) -> None:
    junk = bytes(range(256)) * 64
    for kind in ("docx", "pptx", "xlsx", "xlsm", "odt", "ods", "odp", "epub", "xls"):
        (tmp_path / f"junk.{kind}").write_bytes(junk)
        assert reason(tmp_path / f"junk.{kind}").startswith("corrupt: "), kind
    for kind in ("docx", "pptx", "xlsx", "odt"):
        whole = originals[kind].read_bytes()
        (tmp_path / f"half.{kind}").write_bytes(whole[: len(whole) // 2])
        assert reason(tmp_path / f"half.{kind}").startswith("corrupt: "), kind
    gutted = rewritten(originals["docx"], tmp_path / "gutted.docx", {"word/document.xml": None})
    assert reason(gutted).startswith("corrupt: ")
    garbled = rewritten(
        originals["xlsx"],
        tmp_path / "garbled.xlsx",
        {"xl/worksheets/sheet2.xml": b"<worksheet><sheetData><row>"},
    )
    assert reason(garbled).startswith("corrupt: ")
    (tmp_path / "plain.rtf").write_text("just some text pretending to be RTF")
    assert reason(tmp_path / "plain.rtf").startswith("corrupt: not an RTF file")


def test_a_legacy_binary_file_renamed_is_not_read_as_office_open_xml(tmp_path: Path) -> None:
    (xls,) = soffice(
        [make_xlsx(tmp_path / "book.xlsx")], "xls", tmp_path / "xls", tmp_path / "profile"
    )
    renamed = xls.rename(tmp_path / "old.xlsx")
    assert reason(renamed) == "not an Office Open XML file (a legacy .xls file renamed?)"


def test_repeated_rows_and_cells_of_an_ods_are_capped(tmp_path: Path) -> None:
    """An .ods stores equal rows once with a repeat count: a billion of them is read as
    MAX_REPEAT rows, a million repeated cells as a capped row, in bounded time."""
    body = (
        '<table:table table:name="Bomb"><table:table-row><table:table-cell>'
        "<text:p>Header</text:p></table:table-cell></table:table-row>"
        '<table:table-row table:number-rows-repeated="1000000000">'
        '<table:table-cell table:number-columns-repeated="1000000"><text:p>boom</text:p>'
        "</table:table-cell></table:table-row></table:table>"
    )
    docs = load_file(make_odf(tmp_path / "bomb.ods", body, kind="spreadsheet")).documents
    text = "".join(d.text for d in docs)
    assert text.count("\n| boom |") == MAX_REPEAT
    assert {d.anchor for d in docs} == {"sheet=Bomb"}


def test_rag_index_skips_each_hostile_file_with_its_reason_and_reads_the_rest(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    good = make_docx(folder / "good.docx")
    zip_bomb_ratio(folder / "bomb.docx")
    zip_bomb_members(folder / "many.xlsx")
    poisoned(good, folder / "laughs.docx", "word/document.xml")
    (folder / "junk.pptx").write_bytes(b"PK\x03\x04 not really a zip")
    make_odf(folder / "locked.odt", "<text:p>x</text:p>", encrypted=True)
    (folder / "junk.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    done = rag("index", str(folder), "--name", "inbox", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["formats"] == {".docx": 1}
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert reasons["bomb.docx"].startswith("zip bomb: word/document.xml inflates")
    assert reasons["many.xlsx"].startswith("zip bomb: 10,001 members")
    assert reasons["laughs.docx"] == "XML entity declarations (refused, in word/document.xml)"
    assert reasons["junk.pptx"].startswith("corrupt: not a zip archive")
    assert reasons["locked.odt"] == ENCRYPTED
    assert reasons["junk.xls"].startswith("corrupt: ")
    assert report["skip_reasons"] == {
        "zip bomb": 2,
        "corrupt": 2,
        "XML entity declarations": 1,
        "encrypted": 1,
    }
    text = rag("index", str(folder), "--name", "inbox2")
    assert "Skipped 6: 2 zip bomb, 2 corrupt" in text.stdout and "1 encrypted" in text.stdout
