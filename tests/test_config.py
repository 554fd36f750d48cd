from pathlib import Path

import pytest

from rag.config import load_settings
from rag.errors import UsageError


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
