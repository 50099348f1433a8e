"""The backend conformance suite, shipped with the core.

Every registered backend, including third-party plugins, runs it with:

    python -m pytest --pyargs cryptoface.testing

Restrict to some backends with `CRYPTOFACE_TEST_BACKENDS=openfhe,tenseal`. A registered
backend whose library does not load is a failure, not a skip: an installed plugin that does
not work is a bug to see.
"""
