"""Encrypted matching (issue 9): polynomial approximations (`approx`) and the one routine
that evaluates them on ciphertexts or numpy arrays (`poly_eval`). The cosine similarity, the
decision mode and the compiler integration (polynomials as IR ops) build on these later;
see docs/match.md."""
