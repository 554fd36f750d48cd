"""The per-question options are declared once (rag.question_options): every front end takes
each of them, by the same name, so a new option is one declaration plus its use."""

from __future__ import annotations

from typer.testing import CliRunner

from rag.cli.app import app
from rag.question_options import ASK_OPTIONS, QUESTION_OPTIONS, SEARCH_OPTIONS
from rag.serve.fields import ASK_FIELDS, CHAT_FIELDS
from rag.serve.routes import SEARCH_PARAMS

runner = CliRunner()


def test_every_option_is_a_flag_of_each_command_that_takes_it() -> None:
    helps = {
        name: runner.invoke(app, [name, "--help"]).stdout for name in ("ask", "chat", "search")
    }
    for option in QUESTION_OPTIONS:
        flag = option.spellings[0]
        assert flag in helps["ask"] and flag in helps["chat"], flag
        assert (flag in helps["search"]) == (not option.generation), flag


def test_every_option_is_a_field_of_each_endpoint_that_takes_it() -> None:
    assert set(ASK_OPTIONS) <= ASK_FIELDS and set(ASK_OPTIONS) <= CHAT_FIELDS
    assert set(SEARCH_OPTIONS) <= SEARCH_PARAMS
    assert not {o.name for o in QUESTION_OPTIONS if o.generation} & SEARCH_PARAMS
