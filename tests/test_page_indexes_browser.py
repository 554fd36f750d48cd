"""The research desk's Indexes view in a real browser (the system's Chromium through
Playwright, tests/browser.py: nothing beyond 127.0.0.1, no dialog) against a real
`rag serve` on 127.0.0.1 with the fake embedder: files uploaded from the page (the file
box, and files dropped on it) are indexed while the page shows the job's progress, the
table gains the index, and the Ask view then finds their text; a folder is added and
reindexed; removal asks first, in the page; a phone gets no horizontal scroll."""

# ruff: noqa: F811 - the fixtures imported from other test modules are the tests' parameters

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from browser import Browser, missing
from conftest import FakeGenerator, returning
from index_fixtures import FakeEmbedder, docs, fake_embedder  # noqa: F401 - fixtures
from test_index_routes import GatedEmbedder, gated  # noqa: F401 - fixtures
from test_page_browser import WAIT_MS, ask, browser, open_desk  # noqa: F401 - fixtures
from test_serve import running

pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")

QUINCE = b"# Orchard\n\nThe quince tree by the shed fruits in late October every year.\n"
HOSTILE_NAME = "<img src=x onerror=alert(1)>.md"


@pytest.fixture
def model(register_part: Callable[..., None]) -> FakeGenerator:
    generator = FakeGenerator(reply=lambda messages: "The quince fruits in late October [1].")
    register_part("generator", "fake", returning(generator), argument="ANY")
    return generator


def open_indexes(browser: Browser, url: str, width: int = 1280, height: int = 900) -> Any:
    page = open_desk(browser, url, width, height)
    link = page.locator("nav.views a[data-view=indexes]")
    assert link.is_visible()
    link.click()
    page.wait_for_selector("#view-indexes:not([hidden]) #upload-files")
    return page


def watch_jobs(page: Any) -> None:
    """Record every text the jobs' lines show, in order."""
    page.evaluate(
        """() => {
            window.jobTexts = [];
            new MutationObserver(() => {
                for (const p of document.querySelectorAll('#jobs .job-text')) {
                    const t = p.textContent;
                    if (window.jobTexts[window.jobTexts.length - 1] !== t) window.jobTexts.push(t);
                }
            }).observe(document.querySelector('#jobs'),
                       {characterData: true, childList: true, subtree: true});
        }"""
    )


def wait_job_done(page: Any, count: int = 1) -> None:
    page.wait_for_function(
        "(n) => document.querySelectorAll('#jobs .job.finished, #jobs .job.failed').length >= n",
        arg=count,
        timeout=WAIT_MS,
    )


def test_an_upload_in_the_page_shows_its_progress_then_ask_finds_it(
    browser: Browser, model: FakeGenerator, gated: GatedEmbedder, rag_home: Path
) -> None:
    with running() as url:
        page = open_indexes(browser, url)
        assert page.locator("#index-table").is_hidden()  # no index yet: a hint instead
        watch_jobs(page)
        page.fill("#index-name", "orchard")
        page.set_input_files(
            "#upload-files",
            files=[{"name": "quince.md", "mimeType": "text/markdown", "buffer": QUINCE}],
        )
        assert "quince.md" in page.text_content("#picked-files")
        page.click("#upload")
        assert gated.waiting.wait(60)  # the job is embedding: held there
        page.wait_for_function(
            "() => /Reading files|Embedding|Starting/.test("
            "document.querySelector('#jobs .job-text')?.textContent || '')",
            timeout=WAIT_MS,
        )
        assert page.locator("#jobs progress").count() == 1
        assert page.locator("tr[data-index=orchard]").count() == 0  # not an index yet
        gated.gate.set()
        wait_job_done(page)
        texts = page.evaluate("window.jobTexts")
        assert texts[-1].startswith("Done: orchard has ") and "1 file read" in texts[-1], texts
        assert any(not t.startswith("Done") for t in texts), texts  # progress came before
        row = page.locator("#index-table tr[data-index=orchard]")
        row.wait_for(timeout=WAIT_MS)
        assert row.locator("th").text_content() == "orchard"
        assert row.locator("td[data-label=Files]").text_content() == "1"
        assert int(row.locator("td[data-label=Chunks]").text_content()) >= 1
        assert row.locator("td[data-label=Embedder]").text_content() == "fake"
        assert row.locator("td[data-label=Store]").text_content() == "local"
        assert row.locator("td[data-label=Updated]").text_content().startswith("20")
        assert (rag_home / "uploads" / "orchard" / "quince.md").read_bytes() == QUINCE

        page.click("nav.views a[data-view=ask]")
        box = page.locator("fieldset.sources input[value=orchard]")
        box.wait_for(timeout=WAIT_MS)  # the Ask view heard "indexes-changed"
        box.check()
        ask(page, "When does the quince tree fruit?")
        card = page.locator(".result .card").first
        assert "quince tree by the shed" in card.text_content()
        assert "quince.md" in card.locator(".where").text_content()


def drop(page: Any, names_and_texts: list[tuple[str, str]]) -> None:
    """Drop files on the drop box, as a file manager would."""
    page.evaluate(
        """(files) => {
            const data = new DataTransfer();
            for (const [name, text] of files) data.items.add(new File([text], name));
            const zone = document.querySelector('#dropzone');
            const options = {dataTransfer: data, bubbles: true, cancelable: true};
            zone.dispatchEvent(new DragEvent('dragover', options));
            zone.dispatchEvent(new DragEvent('drop', options));
        }""",
        [list(pair) for pair in names_and_texts],
    )


def test_dropped_files_a_folder_reindex_and_remove_with_confirmation(
    browser: Browser, model: FakeGenerator, fake_embedder: FakeEmbedder, docs: Path, rag_home: Path
) -> None:
    before = sorted(p.name for p in docs.rglob("*"))
    with running() as url:
        page = open_indexes(browser, url)
        page.fill("#index-name", "garden")
        drop(page, [(HOSTILE_NAME, "Figs ripen on the south wall in August."),
                    ("pears.md", "Pears ripen off the tree.")])  # fmt: skip
        picked = page.text_content("#picked-files")
        assert HOSTILE_NAME in picked and "pears.md" in picked
        page.click("#upload")
        wait_job_done(page)
        assert page.locator("main img").count() == 0  # the name stayed text
        row = page.locator("#index-table tr[data-index=garden]")
        row.wait_for(timeout=WAIT_MS)
        assert row.locator("td[data-label=Files]").text_content() == "2"

        page.fill("#folder-path", str(docs))
        page.click("#add-folder")
        wait_job_done(page, 2)
        page.wait_for_function(
            "() => Number(document.querySelector("
            "'tr[data-index=garden] td[data-label=Files]').textContent) > 2",
            timeout=WAIT_MS,
        )
        skipped = page.locator("#jobs .job").first.locator("details.skipped")
        assert skipped.count() == 1  # docs/ has a binary and a broken PDF: said, not hidden
        skipped.locator("summary").click()
        assert "binary" in skipped.text_content()

        row.locator(".reindex").click()
        wait_job_done(page, 3)
        assert "0 embedded" in page.text_content("#jobs .job-text >> nth=0")

        # An unsafe name is the server's one-line refusal, shown in the page.
        page.set_input_files("#upload-files", files=[{"name": ".env", "mimeType": "text/plain",
                                                      "buffer": b"SECRET=1"}])  # fmt: skip
        page.click("#upload")
        page.wait_for_selector(".add-documents .error:text('hidden name')")
        assert not (rag_home / "uploads" / "garden" / ".env").exists()

        row.locator(".remove").click()
        confirm = row.locator("[role=group]")
        assert "Your folders stay" in confirm.text_content()
        assert page.evaluate("document.activeElement.classList.contains('confirm-remove')")
        page.keyboard.press("Escape")  # changed its mind
        assert row.locator("[role=group]").count() == 0
        row.locator(".remove").click()
        row.locator(".confirm-remove").click()
        page.wait_for_selector("#index-table tr[data-index=garden]", state="detached")
        assert page.text_content("#indexes-status") == "Removed garden."
    assert sorted(p.name for p in docs.rglob("*")) == before  # the user's folder is whole
    assert not (rag_home / "uploads" / "garden").exists()


def test_the_indexes_view_fits_a_phone(
    browser: Browser, model: FakeGenerator, fake_embedder: FakeEmbedder, rag_home: Path
) -> None:
    long_name = "a-very-long-index-name-" + "x" * 40
    with running() as url:
        page = open_indexes(browser, url, 375, 812)
        page.fill("#index-name", long_name)
        page.set_input_files("#upload-files", files=[
            {"name": "compost-notes-with-a-long-name-" * 5 + ".md", "mimeType": "text/markdown",
             "buffer": b"# Compost\n\nTurn the heap every two weeks."},
            {"name": "pixel.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\n\x00\x00"},
        ])  # fmt: skip
        page.click("#upload")
        wait_job_done(page)
        page.locator(f"tr[data-index='{long_name}']").wait_for(timeout=WAIT_MS)
        page.locator("#jobs details.skipped summary").click()
        width = "document.documentElement.scrollWidth"
        assert page.evaluate(width) <= 375
        assert page.evaluate("document.body.scrollWidth") <= 375
        page.locator(f"tr[data-index='{long_name}'] .remove").click()
        assert page.evaluate(width) <= 375
        box = page.locator(f"tr[data-index='{long_name}'] .confirm-remove").bounding_box()
        assert box["x"] + box["width"] <= 375
