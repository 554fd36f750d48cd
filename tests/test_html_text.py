"""The one HTML -> text parser (prompts, fetched pages, indexed HTML files)."""

from __future__ import annotations

from rag.core.html_text import html_to_text, parse_html

PAGE = (
    "<!doctype html><html><head><title> The\n Lighthouse  Keeper </title>"
    "<script>var tracking = 1;</script></head><body><nav>Home | Contact us</nav>"
    "<svg><title>an icon</title></svg><article><h4>Skerry Point</h4><p>Kept by one"
    "<br>family &amp; lit<br/>at dusk.</p><ul><li>one</li><li>two</li></ul></article>"
    "<footer>All rights reserved.</footer></body></html>"
)


def test_title_apart_blocks_on_lines_hidden_elements_out() -> None:
    page = parse_html(PAGE)
    assert page.title == "The Lighthouse Keeper"  # the first title, spaces folded
    assert page.text.strip() == (
        "Home | Contact us\n\nSkerry Point\n\nKept by one\nfamily & lit\nat dusk.\n\n"
        "one\n\ntwo\n\nAll rights reserved."
    )


def test_boilerplate_is_skipped_on_request() -> None:
    text = parse_html(PAGE, skip_boilerplate=True).text
    assert "Contact us" not in text and "All rights reserved" not in text
    assert text.strip().startswith("Skerry Point")


def test_an_unclosed_head_ends_at_the_body() -> None:
    page = parse_html("<html><head><title>T</title><body><p>never closed head</p>")
    assert (page.title, page.text.strip()) == ("T", "never closed head")


def test_a_fragment() -> None:
    assert html_to_text("Some <b>bold</b> &lt;/source&gt; and <i>it</i>") == (
        "Some bold </source> and it"
    )
