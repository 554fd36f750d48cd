"""Feeds and other XML read as text, never markup: RSS 2.0 and Atom items with HTML in
them (as real feeds carry: `<img srcset=...>` in CDATA, escaped HTML, XHTML content), one
document per item; entity bombs and external entities refused; and a saved web page still
read by trafilatura. End to end through `rag index` and `rag search --json`."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

from pathlib import Path

from format_fixtures import chunks, index, search, skipped
from index_fixtures import fake_embedder  # noqa: F401 - fixture

from indexers.chunking import chunk_documents
from indexers.loaders import load_file

PICTURE = (
    '<figure class="wp-block-image"><img loading="lazy" width="1024" height="683" '
    'src="https://news.example/wp-content/uploads/2025/03/ferry-1024x683.jpg" '
    'srcset="https://news.example/wp-content/uploads/2025/03/ferry-1024x683.jpg 1024w, '
    "https://news.example/wp-content/uploads/2025/03/ferry-300x200.jpg 300w, "
    "https://news.example/wp-content/uploads/2025/03/ferry-768x512.jpg 768w, "
    'https://news.example/wp-content/uploads/2025/03/ferry.jpg 1500w" '
    'sizes="(max-width: 1024px) 100vw, 1024px" /></figure>'
)


def _rss(items: int = 3) -> str:
    entries = "".join(
        f"""<item><title>Harbour note {i}</title><link>https://news.example/note-{i}</link>
<pubDate>Mon, 0{i % 9 + 1} Mar 2025 10:00:00 GMT</pubDate><dc:creator>Mara Flett</dc:creator>
<category>harbour</category><category>ferries</category>
<description><![CDATA[<div class="excerpt">{PICTURE}<p>Short summary {i}.</p></div>]]></description>
<content:encoded><![CDATA[<div class="entry">{PICTURE}<p>The ferry number {i} leaves
at nine from pier {i}.</p><p>Tickets at the kiosk.</p></div>]]></content:encoded></item>"""
        for i in range(1, items + 1)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
  xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Harbour News</title><link>https://news.example</link>
<description>News from the harbour</description>{entries}</channel></rss>"""


ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Tide Blog</title>
<link href="https://tides.example/"/><updated>2025-01-02T00:00:00Z</updated>
<entry><title>Spring tides</title><link rel="alternate" href="https://tides.example/spring"/>
<id>urn:1</id><updated>2025-01-02T00:00:00Z</updated><author><name>Ada Tern</name></author>
<category term="tides"/>
<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>Spring tides rise
<em>highest</em> at new moon.</p><p>Second paragraph.</p></div></content></entry>
<entry><title>Neap tides</title><id>urn:2</id><updated>2025-01-01T00:00:00Z</updated>
<summary type="html">&lt;p class="lead"&gt;Neap tides are the &lt;b&gt;weakest&lt;/b&gt;
 &amp;amp; lowest.&lt;/p&gt;</summary></entry></feed>"""

RDF = """<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
 xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://old.example/"><title>Old Wire</title><link>https://old.example/</link>
<description>RSS 1.0</description></channel>
<item rdf:about="https://old.example/1"><title>Lantern fair</title>
<link>https://old.example/1</link><dc:date>2004-05-06</dc:date>
<description>The lantern fair opens on &lt;i&gt;Friday&lt;/i&gt;.</description></item></rdf:RDF>"""


def words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def test_rss_items_are_documents_of_text_with_their_link_date_and_author(tmp_path: Path) -> None:
    """Before: the feed was read as raw markup, every item's srcset a chunk of URLs."""
    (tmp_path / "harbour.rss").write_text(_rss())
    docs = load_file(tmp_path / "harbour.rss").documents
    assert [(d.anchor, d.title, d.section) for d in docs] == [
        (f"item={i}", "Harbour News", ((1, f"Harbour note {i}"),)) for i in (1, 2, 3)
    ]
    assert docs[1].text == (
        "Link: https://news.example/note-2\nDate: Mon, 03 Mar 2025 10:00:00 GMT\n"
        "Author: Mara Flett\nCategories: harbour, ferries\n\n"
        "The ferry number 2 leaves at nine from pier 2.\n\nTickets at the kiosk.\n\n"
    )
    chunk = chunk_documents(docs, str(tmp_path / "harbour.rss"), words)[1]
    assert chunk.title == "Harbour News › Harbour note 2"
    assert chunk.location == f"{tmp_path / 'harbour.rss'}#item=2:chunk0"


def test_atom_and_rss_1_entries_read_their_html_and_xhtml_as_text(tmp_path: Path) -> None:
    (tmp_path / "tides.atom").write_text(ATOM)
    spring, neap = load_file(tmp_path / "tides.atom").documents
    assert spring.title == "Tide Blog" and spring.section == ((1, "Spring tides"),)
    assert spring.text == (
        "Link: https://tides.example/spring\nDate: 2025-01-02T00:00:00Z\nAuthor: Ada Tern\n"
        "Categories: tides\n\nSpring tides rise highest at new moon.\n\nSecond paragraph.\n\n"
    )
    assert neap.text.endswith("Neap tides are the weakest & lowest.\n\n")
    (tmp_path / "old.xml").write_text(RDF)
    (item,) = load_file(tmp_path / "old.xml").documents
    assert (item.title, item.anchor) == ("Old Wire", "item=1")
    assert "The lantern fair opens on Friday." in item.text and "<i>" not in item.text


def test_other_xml_reads_as_element_text_and_other_encodings_are_decoded(tmp_path: Path) -> None:
    (tmp_path / "books.xml").write_text(
        '<?xml version="1.0"?><catalog><book id="7"><title>Dune</title><author>Herbert'
        "</author><blurb>A <b>desert</b> planet.</blurb></book><book><title>Emma</title>"
        "</book></catalog>"
    )
    (doc,) = load_file(tmp_path / "books.xml").documents
    assert doc.text == (
        "book.title: Dune\nbook.author: Herbert\nbook.blurb: A desert planet.\n\n"
        "book.title: Emma\n\n"
    )
    feed = '<?xml version="1.0" encoding="Shift_JIS"?><rss><channel><title>港だより</title>'
    feed += (
        "<item><title>フェリー</title><description>九時に出航</description></item></channel></rss>"
    )
    (tmp_path / "jp.rss").write_bytes(feed.encode("shift_jis"))
    (item,) = load_file(tmp_path / "jp.rss").documents
    assert (item.title, item.section, item.text) == (
        "港だより",
        ((1, "フェリー"),),
        "九時に出航\n\n",
    )


def test_feeds_end_to_end_no_markup_indexed_and_a_saved_page_still_read(
    tmp_path: Path, fake_embedder
) -> None:
    """Before: 40 items of srcset markup made dozens of chunks of URLs and attributes."""
    folder = tmp_path / "web"
    folder.mkdir()
    (folder / "harbour.xml").write_text(_rss(40))
    (folder / "tides.atom").write_text(ATOM)
    (folder / "page.html").write_text(
        "<html><head><title>The Lighthouse Keeper</title></head><body><nav>Home | About</nav>"
        "<article><h1>The Lighthouse Keeper</h1><p>Margaret Flett kept the lamp of the north "
        "light for forty years, trimming the wick each dusk.</p><p>She logged every ship "
        "that passed the reef in a leather book.</p></article><footer>All rights reserved"
        "</footer></body></html>"
    )
    report = index(folder)
    assert report["files_read"] == 3, report["skipped"]
    every = chunks()
    assert not [t for _, _, t in every if "srcset" in t or "<div" in t or "wp-content" in t]
    assert len(every) < 60, len(every)
    found = search("ferry number 17 pier 17")[0]
    assert found["location"] == f"{folder / 'harbour.xml'}#item=17:chunk0"
    assert found["title"] == "Harbour News › Harbour note 17"
    assert search("spring tides new moon")[0]["title"] == "Tide Blog › Spring tides"
    page = search("Margaret Flett lamp wick")[0]
    assert page["title"] == "The Lighthouse Keeper" and "All rights reserved" not in page["text"]


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
        for i in range(1, 10)
    )
    + "]><rss><channel><title>&lol9;</title></channel></rss>"
)


def test_entity_bombs_and_external_entities_are_refused(tmp_path: Path, fake_embedder) -> None:
    """Before: read as raw text (so nothing expanded, but the DTD and `&lol9;` were
    indexed as if they were news). Now refused with a reason, before any expansion or any
    file is read through an entity; the good feed beside them is indexed."""
    folder = tmp_path / "feeds"
    folder.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("vault combination 31-41-59")
    (folder / "laughs.rss").write_text(BILLION_LAUGHS)
    (folder / "external.xml").write_text(
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY s SYSTEM "file://{secret}">]>'
        "<rss><channel><title>x</title><item><title>&s;</title></item></channel></rss>"
    )
    (folder / "good.rss").write_text(_rss(1))
    (folder / "broken.rss").write_text("<rss><channel><title>unclosed")
    report = index(folder)
    reasons = skipped(report)
    assert set(reasons) == {"laughs.rss", "external.xml", "broken.rss"}, reasons
    assert reasons["laughs.rss"].startswith("XML entities declarations refused")
    assert reasons["external.xml"].startswith("XML entities declarations refused")
    assert reasons["broken.rss"].startswith("not well-formed XML")
    assert not any("vault" in t or "lol" in t for _, _, t in chunks())
    assert search("ferry pier")[0]["title"] == "Harbour News › Harbour note 1"
