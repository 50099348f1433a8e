"""Parameter validation and the 128-bit check."""

import logging

import pytest

from cryptoface.errors import InsecureParametersError, ParameterError
from cryptoface.params import HE_STD_128_MAX_LOG_QP, BootstrapConfig, CKKSParams, smallest_secure_ring_dim


def test_standard_table_values():
    # HE standard, Table 1, 128-bit classical, ternary secret.
    assert [HE_STD_128_MAX_LOG_QP[2**k] for k in range(10, 16)] == [27, 54, 109, 218, 438, 881]


def test_secure_and_insecure(caplog):
    ok = CKKSParams(ring_dim=32768, depth=19)
    assert ok.log_qp == 60 + 19 * 40 + 60 == 880 and ok.security_bits() == 128
    ok.check_security()
    weak = CKKSParams(ring_dim=32768, depth=20)
    with pytest.raises(InsecureParametersError, match="881"):
        weak.check_security()
    flagged = CKKSParams(ring_dim=32768, depth=20, insecure_test_params=True)
    with caplog.at_level(logging.WARNING, logger="cryptoface.security"):
        flagged.check_security()
        flagged.check_security()
    assert caplog.text.count("INSECURE") == 2  # every time, not once


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(ring_dim=3000, depth=2), "power of two"),
        (dict(ring_dim=8192, depth=2, slots=8192), "slots"),
        (dict(ring_dim=8192, depth=2, slots=100), "slots"),
        (dict(ring_dim=8192, depth=2, scale_bits=60, first_mod_bits=60), "first_mod_bits"),
        (dict(ring_dim=8192, depth=3, bootstrap=BootstrapConfig(depth=3)), "no level would be left"),
    ],
)
def test_inconsistent_params(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        CKKSParams(**kwargs)


def test_round_trip_and_helpers():
    p = CKKSParams(ring_dim=65536, depth=30, slots=4096, bootstrap=BootstrapConfig((3, 3), 14))
    assert CKKSParams.from_dict(p.to_dict()) == p
    assert p.levels_after_bootstrap == 16
    assert smallest_secure_ring_dim(880) == 32768
    assert smallest_secure_ring_dim(900) == 65536
    assert smallest_secure_ring_dim(100, min_slots=8192) == 16384
