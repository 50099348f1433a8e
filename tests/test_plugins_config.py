"""Plugin discovery, broken plugins, backend selection precedence."""

from __future__ import annotations

import importlib.metadata
import json
import sys
import types

import pytest
from typer.testing import CliRunner

from cryptoface import config as cfg
from cryptoface import plugins
from cryptoface.cli import app
from cryptoface.errors import BackendUnavailableError, ConfigError
from cryptoface.simulator import SimulatorEngine


class MissingLibraryEngine(SimulatorEngine):
    name = "missinglib"

    @classmethod
    def capabilities(cls):
        import cryptoface_no_such_fhe_library  # noqa: F401  (the point of the test)


def _fake_entry_points(monkeypatch, eps):
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", lambda group: [e for e in eps if e.group == group])


@pytest.fixture()
def fake_plugins(monkeypatch):
    mod = types.ModuleType("fake_missing_plugin")

    @plugins.hookimpl
    def cryptoface_register_backends(register):
        register.add(MissingLibraryEngine)

    mod.cryptoface_register_backends = cryptoface_register_backends
    monkeypatch.setitem(sys.modules, "fake_missing_plugin", mod)
    eps = [
        importlib.metadata.EntryPoint("missinglib", "fake_missing_plugin", plugins.ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint("broken", "cryptoface_no_such_plugin_module", plugins.ENTRY_POINT_GROUP),
    ]
    _fake_entry_points(monkeypatch, eps)
    return plugins.Plugins()


def test_broken_plugins_are_listed_unavailable_with_reason(fake_plugins):
    infos = {b.name: b for b in fake_plugins.backends()}
    assert infos["simulator"].available
    assert not infos["missinglib"].available
    assert "cryptoface_no_such_fhe_library" in infos["missinglib"].reason
    assert not infos["broken"].available
    assert "failed to load" in infos["broken"].reason
    with pytest.raises(BackendUnavailableError, match="missinglib.*unavailable"):
        fake_plugins.get("missinglib")
    with pytest.raises(ConfigError, match="unknown backend 'nosuch'.*simulator"):
        fake_plugins.get("nosuch")


def test_load_plugins_env_restricts(monkeypatch, fake_plugins):
    monkeypatch.setenv("CRYPTOFACE_LOAD_PLUGINS", "missinglib")
    names = plugins.Plugins().names()
    assert "missinglib" in names and "broken" not in names and "simulator" in names


def test_duplicate_backend_name_is_refused():
    reg = plugins.BackendRegistry()
    reg.add(SimulatorEngine)

    class Impostor(SimulatorEngine):
        name = "simulator"

    with pytest.raises(ConfigError, match="registered twice"):
        reg.add(Impostor)


def test_backend_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(cfg.ENV_BACKEND, raising=False)
    assert cfg.resolve(check=False).backend == cfg.DEFAULT_BACKEND
    (tmp_path / "cryptoface.toml").write_text('backend = "from-file"\n')
    assert cfg.resolve(check=False).backend == "from-file"
    monkeypatch.setenv(cfg.ENV_BACKEND, "from-env")
    assert cfg.resolve(check=False).backend == "from-env"
    assert cfg.resolve("from-flag", check=False).backend == "from-flag"
    other = tmp_path / "other.toml"
    other.write_text('[cryptoface]\nbackend = "simulator"\n')
    monkeypatch.delenv(cfg.ENV_BACKEND)
    assert cfg.resolve(config_path=other).backend == "simulator"


def test_unknown_backend_lists_available(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="unknown backend 'nope'.*available backends:.*simulator"):
        cfg.resolve("nope")


def test_bad_config_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("backend = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        cfg.resolve(config_path=bad, check=False)
    with pytest.raises(ConfigError, match="does not exist"):
        cfg.resolve(config_path=tmp_path / "missing.toml", check=False)
    bad.write_text("threads = -2\n")
    with pytest.raises(ConfigError, match="threads"):
        cfg.resolve(config_path=bad, check=False)


def test_cli_backends_json_and_errors(monkeypatch, tmp_path):
    runner = CliRunner()
    out = runner.invoke(app, ["backends", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    sim = next(r for r in rows if r["name"] == "simulator")
    for key in ("name", "library_version", "available", "bootstrapping", "reason"):
        assert key in sim
    assert sim["available"] is True
    monkeypatch.chdir(tmp_path)
    bad = runner.invoke(app, ["config", "--backend", "nope"])
    assert bad.exit_code == 2
    assert "unknown backend 'nope'" in bad.output


def test_example_third_party_plugin_registers_and_computes(monkeypatch):
    """examples/thirdparty_plugin, found through an entry point, runs the shared program."""
    from pathlib import Path

    import numpy as np

    from cryptoface.backend import HEContext
    from cryptoface.testing.conftest import PARAMS, STEPS
    from cryptoface.testing.programs import poly7_then_rotate_sum, poly7_then_rotate_sum_reference

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "examples" / "thirdparty_plugin"))
    _fake_entry_points(monkeypatch, [importlib.metadata.EntryPoint("exact", "cryptoface_exact", plugins.ENTRY_POINT_GROUP)])
    reg = plugins.Plugins()
    assert "exact" in reg.names()
    engine = reg.get("exact")
    client = HEContext.create(engine, PARAMS, STEPS)
    server = HEContext.deserialize(client.public().serialize(), engine)
    x = np.linspace(-1, 1, PARAMS.slots)
    out = client.decrypt(client.deserialize_ciphertext(server.serialize_ciphertext(
        poly7_then_rotate_sum(server, server.deserialize_ciphertext(client.serialize_ciphertext(client.encrypt(x))), PARAMS.slots))))
    assert np.max(np.abs(out - poly7_then_rotate_sum_reference(x, PARAMS.slots))) < 1e-9  # exact: no noise


def test_cli_plan_and_infer_on_the_simulator():
    runner = CliRunner()
    out = runner.invoke(app, ["plan", "small", "--backend", "simulator", "--json"])
    assert out.exit_code == 0, out.output
    rep = json.loads(out.output)
    for key in ("ring_dim", "log_q", "security_bits", "depth", "bootstraps", "rotations", "rotation_keys", "key_memory_bytes"):
        assert key in rep
    assert rep["security_bits"] == 128 and rep["bootstraps"] == 0
    out = runner.invoke(app, ["infer", "small", "--backend", "simulator", "--image", "orl:5", "--check"])
    assert out.exit_code == 0, out.output
    cos = float(out.output.rsplit("cosine similarity", 1)[1].split()[0])
    assert cos > 0.9999
    bad = runner.invoke(app, ["infer", "nosuchmodel", "--backend", "simulator"])
    assert bad.exit_code == 2 and "unknown model 'nosuchmodel'" in bad.output
