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
    server = HEContext.deserialize_public(client.public().serialize(), engine, mac_key=client.mac_key)
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


# ---- insecure_test_params: explicit, loud, honest --------------------------------------------


def test_insecure_flag_only_from_an_explicit_file_or_the_cli_flag(tmp_path, monkeypatch):
    import warnings

    from cryptoface.errors import InsecureParametersWarning

    monkeypatch.chdir(tmp_path)
    implicit = tmp_path / "cryptoface.toml"
    implicit.write_text("insecure_test_params = true\n")
    with pytest.raises(ConfigError, match="never taken from a file found implicitly.*--config"):
        cfg.resolve(check=False)
    with pytest.warns(InsecureParametersWarning, match="--config"):
        explicit = cfg.resolve(config_path=implicit, check=False)
    assert explicit.insecure_test_params and explicit.insecure_source == f"--config {implicit}"
    implicit.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no flag, no file: silent and secure
        assert not cfg.resolve(check=False).insecure_test_params
    with pytest.warns(InsecureParametersWarning, match=cfg.INSECURE_FLAG):
        flagged = cfg.resolve(check=False, insecure_flag=True)
    assert flagged.insecure_test_params and flagged.insecure_source == cfg.INSECURE_FLAG


def test_check_security_warns_every_time_the_flag_is_on(caplog):
    import dataclasses
    import logging
    import warnings

    from cryptoface.errors import InsecureParametersWarning
    from cryptoface.testing.conftest import PARAMS

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PARAMS.check_security()  # 128-bit, no flag: nothing to say
    flagged = dataclasses.replace(PARAMS, insecure_test_params=True)
    with caplog.at_level(logging.WARNING, logger="cryptoface.security"), pytest.warns(InsecureParametersWarning) as rec:
        flagged.check_security()
        flagged.check_security()
    assert len(rec) == 2 and caplog.text.count("INSECURE TEST PARAMETERS") == 2


def test_openfhe_keeps_128_bit_when_the_flag_is_on_but_the_parameters_are_secure():
    """The flag used to switch OpenFHE to HEStd_NotSet for every parameter set: keygen then
    picked 3 key-switching digits where 128-bit needs more, while the plan said 128-bit."""
    import dataclasses

    from cryptoface.backend import HEContext
    from cryptoface.errors import InsecureParametersWarning
    from cryptoface.testing.conftest import PARAMS

    engine = plugins.get_plugins().get("openfhe")  # unavailable is a failure, not a skip
    plain = HEContext.create(engine, PARAMS, [1])
    with pytest.warns(InsecureParametersWarning, match="parameters are 128-bit"):
        flagged = HEContext.create(engine, dataclasses.replace(PARAMS, insecure_test_params=True), [1])
    assert PARAMS.security_bits() == 128
    assert flagged.engine.num_large_digits == plain.engine.num_large_digits > 3


def test_cli_plan_with_the_insecure_flag_is_loud_and_prints_the_real_level():
    from cryptoface.cli import _security

    out = CliRunner().invoke(app, ["plan", "small", "--backend", "simulator", "--insecure-test-params"])
    assert out.exit_code == 0, out.output
    assert "INSECURE TEST PARAMETERS" in out.stderr and "--insecure-test-params" in out.stderr
    assert "security 128-bit" in out.stdout  # the search still picks 128-bit parameters
    assert _security({"security_bits": 0}) == "BELOW 128-bit (insecure test parameters)"
