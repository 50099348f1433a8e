import numpy as np

from cryptoface_exporters.evaluate import (best_threshold, equal_error_rate, format_table, kfold_accuracy,
                                           tar_at_far, verify_pairs)


def test_perfect_separation():
    same = np.array([True] * 50 + [False] * 1500)
    scores = np.where(same, 0.8, 0.1) + np.random.default_rng(0).uniform(-0.05, 0.05, len(same))
    r = verify_pairs("toy", scores, same)
    assert r.accuracy == 1.0 and r.eer == 0.0 and r.tar_at_far == 1.0
    assert 0.15 < r.threshold < 0.75


def test_chance_level_scores():
    rng = np.random.default_rng(1)
    same = rng.random(2000) < 0.5
    acc, _ = kfold_accuracy(rng.random(2000), same)
    assert 0.4 < acc < 0.6
    assert 0.4 < equal_error_rate(rng.random(2000), same) < 0.6


def test_known_overlap():
    # genuine 0.6..0.9, impostors 0.0..0.7: the overlap decides the errors exactly
    gen, imp = np.linspace(0.6, 0.9, 100), np.linspace(0.0, 0.7, 100)
    scores, same = np.concatenate([gen, imp]), np.array([True] * 100 + [False] * 100)
    t, acc = best_threshold(scores, same)
    assert 0.55 <= t <= 0.7 and acc > 0.9
    assert tar_at_far(scores, same, 1e-3) is None  # too few impostors for FAR 1e-3
    # FAR <= 1e-2 with 100 impostors lets exactly one (the top one) through
    assert tar_at_far(scores, same, 1e-2) == np.mean(gen > imp[-2])


def test_table_has_a_row_per_result():
    same = np.array([True, False] * 20)
    rows = format_table([verify_pairs("a", same * 1.0, same), verify_pairs("b", same * 1.0, same)])
    assert rows.count("\n") == 3 and "| a |" in rows and "n/a" in rows
