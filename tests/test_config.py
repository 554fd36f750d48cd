import re
from pathlib import Path

import pytest

from rag.core.config import load_settings
from rag.core.errors import UsageError


def test_defaults(rag_home: Path) -> None:
    settings = load_settings()
    assert settings.home == rag_home
    assert settings.model == "phi-3-mini"
    assert settings.temperature == 0.0
    assert settings.indexes_dir == rag_home / "indexes"


def test_precedence_flag_over_env_over_file(
    rag_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (rag_home / "config.toml").write_text('model = "from-file"\nk = 3\nmax_tokens = 99\n')
    assert load_settings().model == "from-file"
    monkeypatch.setenv("RAG_MODEL", "from-env")
    monkeypatch.setenv("RAG_K", "7")
    settings = load_settings()
    assert (settings.model, settings.k, settings.max_tokens) == ("from-env", 7, 99)
    assert load_settings(model="from-flag", k=None).model == "from-flag"
    assert load_settings(model="from-flag", k=None).k == 7


def test_rag_home_moves_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "config.toml").write_text('model = "smollm2-135m"\n')
    monkeypatch.setenv("RAG_HOME", str(other))
    assert load_settings().model == "smollm2-135m"


def test_bool_and_bad_values(rag_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_HYBRID", "off")
    assert load_settings().hybrid is False
    monkeypatch.setenv("RAG_K", "many")
    with pytest.raises(UsageError, match="RAG_K: k must be a whole number"):
        load_settings()


def test_bad_config_file_is_a_usage_error(rag_home: Path) -> None:
    (rag_home / "config.toml").write_text("model = \n")
    with pytest.raises(UsageError, match="Cannot read config file"):
        load_settings()
    (rag_home / "config.toml").write_text('modle = "x"\n')
    with pytest.raises(UsageError, match="Unknown setting.*modle"):
        load_settings()


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("RAG_K", "0", "k must be between 1 and 100"),
        ("RAG_MAX_TOKENS", "0", "max_tokens must be between 1 and 32768"),
        ("RAG_CONTEXT_CAP", "10", "context_cap must be between 64 and 1048576"),
        ("RAG_FETCH", "11", "fetch must be between 0 and 10"),
        # every numeric setting has an upper bound: these used to crash or hang llama.cpp
        ("RAG_THREADS", "100000", "threads must be between 0 and 1024"),
        ("RAG_THREADS", "10000", "threads must be between 0 and 1024"),
        ("RAG_CONTEXT_CAP", "1000000000", "context_cap must be between 64 and 1048576"),
        ("RAG_MAX_TOKENS", "99999999", "max_tokens must be between 1 and 32768"),
        ("RAG_SEED", "-1", "seed must be between 0 and 4294967295"),
        (
            "RAG_SEARCH_CACHE_TTL",
            "999999999999",
            "search_cache_ttl must be between 0 and 315360000",
        ),
        ("RAG_TEMPERATURE", "nan", "temperature must be a finite number"),
        ("RAG_TEMPERATURE", "inf", "temperature must be a finite number"),
        ("RAG_TEMPERATURE", "-0.5", "temperature must be between 0.0 and 2.0"),
        ("RAG_WEIGHT_REPACK", "maybe", "weight_repack must be one of auto, on, off"),
        # checked here, naming the layer, like every word setting (was: only once a web
        # search was built, naming RAG_SAFESEARCH whatever the layer)
        ("RAG_SAFESEARCH", "maybe", "safesearch must be one of on, moderate, off"),
        ("RAG_TIMELIMIT", "q", "timelimit must be one of '', d, w, m, y"),
    ],
)
def test_out_of_range_values_are_usage_errors(
    env: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(UsageError, match=f"{env}: {message}"):
        load_settings()


def test_out_of_range_in_config_file_names_the_file(rag_home: Path) -> None:
    (rag_home / "config.toml").write_text("k = 0\n")
    with pytest.raises(UsageError, match="config.toml: k must be between 1 and 100"):
        load_settings()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2.5])
def test_flags_are_checked_like_every_other_layer(value: float) -> None:
    with pytest.raises(UsageError, match="--temperature: temperature must be"):
        load_settings(temperature=value)


@pytest.mark.parametrize("flag", ["nan", "inf", "-inf", "3"])
def test_temperature_flag_gives_one_line_and_exit_2(flag: str) -> None:
    from typer.testing import CliRunner

    from rag.cli.app import app

    result = CliRunner().invoke(app, ["ask", "Who wrote Emma?", "--temperature", flag])
    assert result.exit_code == 2
    assert "temperature must be" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("model = 5", "model must be text in quotes, got 5"),
        ("embedder = [1, 2]", "embedder must be text in quotes, got [1, 2]"),
        ("searxng_url = {a = 1}", "searxng_url must be text in quotes"),
        ("openai_api_key = true", "openai_api_key must be text in quotes, got True"),
        ("region = 1979-05-27", "region must be text in quotes"),
        ('safesearch = "strict"', "safesearch must be one of on, moderate, off"),
    ],
)
def test_wrong_types_in_config_file_name_the_file(rag_home: Path, line: str, message: str) -> None:
    """Before: a number, list, table or date given for a text setting was silently turned
    into its Python spelling (`[1, 2]`, `{'a': 1}`) and failed later, far from the file."""
    (rag_home / "config.toml").write_text(line + "\n")
    with pytest.raises(UsageError, match=re.escape(f"config.toml: {message}")):
        load_settings()
