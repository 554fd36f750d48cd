"""Mail read as people keep it: .eml written by the standard library's own writer
(`email.message.EmailMessage`), an .mbox, and an Outlook .msg laid out by extract-msg's
OLE writer (tests/format_fixtures.py). Headers, body and attachments' names are found,
the subject titles each chunk; a huge attachment is never held, a corrupt .msg is one
skip reason."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

import base64
import os
import tracemalloc
from email.message import EmailMessage
from pathlib import Path

import pytest
from format_fixtures import chunks, index, search, skipped, write_msg
from index_fixtures import fake_embedder  # noqa: F401 - fixture

from indexers.chunking import chunk_documents
from indexers.documents import LoadError
from indexers.loaders import load_file

HEADERS = (
    "From: Alice Example <alice@example.org>\r\nTo: Bob Example <bob@example.org>\r\n"
    "Subject: Quarterly budget\r\nDate: Mon, 03 Mar 2025 09:30:00 +0000\r\n\r\n"
)


def words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def _mail(subject: str = "Re: budget", body: str = "The zeppelin hangar costs 4,100 crowns.\n"):
    message = EmailMessage()
    message["From"] = "Alice Example <alice@example.org>"
    message["To"] = "Bob Example <bob@example.org>"
    message["Cc"] = "Carol <carol@example.org>"
    message["Date"] = "Mon, 03 Mar 2025 10:00:00 +0100"
    message["Subject"] = subject
    message.set_content(body)
    return message


def test_eml_headers_body_attachments_and_a_forwarded_message(tmp_path: Path) -> None:
    message = _mail()
    message.add_alternative("<p>The <b>zeppelin</b> hangar (HTML part)</p>", subtype="html")
    message.add_attachment(b"\x89PNG\r\n" + os.urandom(3000), "image", "png", filename="q3.png")
    message.add_attachment("Minutes: the hangar was approved.", filename="minutes.txt")
    forwarded = _mail("Hangar quote", "Quote from the builders: 3,900 crowns.\n")
    message.add_attachment(forwarded)
    path = tmp_path / "inbox.eml"
    path.write_bytes(message.as_bytes())
    (doc,) = load_file(path).documents
    assert doc.title == "Re: budget"
    assert doc.text.startswith(
        "From: Alice Example <alice@example.org>\nTo: Bob Example <bob@example.org>\n"
        "Cc: Carol <carol@example.org>\nDate: Mon, 03 Mar 2025 10:00:00 +0100\n"
        "Subject: Re: budget\n\nThe zeppelin hangar costs 4,100 crowns."
    )
    assert "HTML part" not in doc.text  # text/plain preferred
    assert "Attachment: minutes.txt\n\nMinutes: the hangar was approved." in doc.text
    assert "Forwarded message: Hangar quote" in doc.text
    assert "Quote from the builders: 3,900 crowns." in doc.text
    assert "Attachments: q3.png (image/png)" in doc.text
    titles = [c.title for c in chunk_documents([doc], str(path), words, max_tokens=20)]
    assert titles[0] == "Re: budget" and "Re: budget › Attachment: minutes.txt" in titles


def test_an_html_only_mail_reads_as_its_text(tmp_path: Path) -> None:
    message = _mail()
    message.set_content('<div class="x"><p>Only <i>HTML</i> here</p></div>', subtype="html")
    (tmp_path / "h.eml").write_bytes(message.as_bytes())
    (doc,) = load_file(tmp_path / "h.eml").documents
    assert "Only HTML here" in doc.text and "<div" not in doc.text and "<i>" not in doc.text


def test_an_mbox_is_a_document_per_message(tmp_path: Path) -> None:
    first = _mail("First news")
    second = _mail("Second news", "Quoted below.\n\n>From the harbour master: all clear.\n")
    box = tmp_path / "inbox.mbox"
    box.write_bytes(
        b"From alice@example.org Mon Mar  3 10:00:00 2025\n"
        + first.as_bytes()
        + b"\nFrom bob@example.org Mon Mar  3 11:00:00 2025\n"
        + second.as_bytes()
    )
    docs = load_file(box).documents
    assert "\n\nFrom the harbour master: all clear." in docs[1].text
    assert [(d.anchor, d.title, d.section) for d in docs] == [
        ("message=1", "inbox.mbox", ((1, "First news"),)),
        ("message=2", "inbox.mbox", ((1, "Second news"),)),
    ]
    chunk = chunk_documents(docs, str(box), words)[1]
    assert chunk.title == "inbox.mbox › Second news"
    assert chunk.location == f"{box}#message=2:chunk0"


def test_an_outlook_msg_is_read(tmp_path: Path) -> None:
    """Before: a .msg holds NUL bytes, so it was skipped as "binary"."""
    path = write_msg(
        tmp_path / "budget.msg",
        "Quarterly budget",
        "The zeppelin hangar costs 4,100 crowns.\r\nRegards, Alice",
        HEADERS,
        attachments=(("plan.pdf", b"%PDF-1.4\n" + os.urandom(2000)),),
    )
    (doc,) = load_file(path).documents
    assert doc.title == "Quarterly budget"
    assert doc.text.startswith(
        "From: Alice Example <alice@example.org>\nTo: Bob Example <bob@example.org>\n"
        "Date: Mon, 03 Mar 2025 09:30:00 +0000\nSubject: Quarterly budget\n\n"
        "The zeppelin hangar costs 4,100 crowns.\nRegards, Alice"
    )
    assert "Attachments: plan.pdf (" in doc.text


def test_mail_end_to_end_through_the_cli(tmp_path: Path, fake_embedder) -> None:
    """Before: the .msg was skipped as binary and the .eml indexed as raw MIME."""
    folder = tmp_path / "mail"
    folder.mkdir()
    write_msg(folder / "budget.msg", "Quarterly budget", "Zeppelin hangar: 4,100 crowns.", HEADERS)
    (folder / "reply.eml").write_bytes(_mail("Re: hangar", "Hangar roof done by May.\n").as_bytes())
    report = index(folder)
    assert report["files_read"] == 2, report["skipped"]
    found = search("zeppelin hangar crowns")[0]
    assert found["title"] == "Quarterly budget"
    assert found["location"] == f"{folder / 'budget.msg'}#chunk0"
    found = search("hangar roof May")[0]
    assert found["title"] == "Re: hangar" and "From: Alice Example" in found["text"]
    assert not any("Content-Transfer-Encoding" in text for _, _, text in chunks())


def test_a_huge_base64_attachment_is_never_held_nor_indexed(tmp_path: Path, fake_embedder) -> None:
    """Before: the .eml was read as text, its 12 MB of base64 some thousands of chunks of
    noise competing with every real passage. Now the attachment's lines are dropped while
    the message is parsed: it is named, and memory stays far below its size."""
    message = _mail("Site video", "The video of the hangar site is attached.\n")
    message.add_attachment(os.urandom(9 * 1024 * 1024), "video", "mp4", filename="site.mp4")
    folder = tmp_path / "mail"
    folder.mkdir()
    path = folder / "video.eml"
    path.write_bytes(message.as_bytes())
    assert path.stat().st_size > 12 * 1024 * 1024
    tracemalloc.start()
    try:
        (doc,) = load_file(path).documents
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "Attachments: site.mp4 (video/mp4)" in doc.text
    assert peak < 4 * 1024 * 1024, peak
    report = index(folder)
    assert report["chunks"] <= 2, report["chunks"]
    assert search("video hangar site")[0]["title"] == "Site video"


def test_a_corrupt_msg_is_a_skip_reason_and_the_run_goes_on(tmp_path: Path, fake_embedder) -> None:
    """Before: "binary" for each (a real .msg too); now a corrupt one says it is corrupt."""
    folder = tmp_path / "mail"
    folder.mkdir()
    good = write_msg(folder / "good.msg", "Good one", "The lighthouse keeper retired.", HEADERS)
    data = good.read_bytes()
    (folder / "torn.msg").write_bytes(data[: len(data) // 3])
    (folder / "garbage.msg").write_bytes(data[:8] + os.urandom(4096))
    (folder / "text.msg").write_bytes(base64.b64encode(os.urandom(600)))
    report = index(folder)
    reasons = skipped(report)
    assert set(reasons) == {"torn.msg", "garbage.msg", "text.msg"}, reasons
    assert all(r.startswith("corrupt: not ") for r in reasons.values()), reasons
    assert all("\n" not in r and "Traceback" not in r for r in reasons.values())
    assert search("lighthouse keeper")[0]["title"] == "Good one"


def _nested(depth: int) -> bytes:
    """A message of `depth` multiparts nested in each other (about 50 bytes each)."""
    head = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(depth)
    )
    tail = b"".join(b"\n--b%d--\n" % i for i in reversed(range(depth)))
    return b"Subject: deep\n" + head + b"Content-Type: text/plain\n\ndeep text\n" + tail


def test_a_mail_nested_thousands_deep_is_one_skip_not_a_minute(tmp_path: Path) -> None:
    """10,000 nested parts (500 KB) took 65 s in the parser before the parts were capped;
    in a mailbox only that message is left out."""
    deep = tmp_path / "deep.eml"
    deep.write_bytes(_nested(10_000))
    with pytest.raises(LoadError, match="more than 500 MIME parts"):
        load_file(deep)
    box = tmp_path / "box.mbox"
    box.write_bytes(
        b"From a@example.org Mon Mar  3 10:00:00 2025\n"
        + _nested(10_000)
        + b"\nFrom b@example.org Mon Mar  3 11:00:00 2025\n"
        + _mail("After the deep one").as_bytes()
    )
    loaded = load_file(box)
    assert [d.section for d in loaded.documents] == [((1, "After the deep one"),)]
    assert any("message 1: more than 500 MIME parts" in w for w in loaded.warnings)
