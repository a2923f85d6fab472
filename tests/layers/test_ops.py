import numpy as np
import pytest

from keras_attn.layers._ops import l2_normalize


@pytest.mark.parametrize("epsilon", [1e-12, 1e-6])
def test_l2_normalize_matches_numpy_and_gives_unit_vectors(epsilon, rng):
    x = rng.normal(size=(3, 4, 8)).astype("float32")
    expected = x / np.sqrt((x.astype("float64") ** 2).sum(-1, keepdims=True) + epsilon)
    normalised = np.asarray(l2_normalize(x, epsilon=epsilon))
    np.testing.assert_allclose(normalised, expected, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(normalised, axis=-1), 1.0, atol=1e-5)
    along_first = np.asarray(l2_normalize(x, epsilon=epsilon, axis=0))
    np.testing.assert_allclose(np.linalg.norm(along_first, axis=0), 1.0, atol=1e-5)


def test_l2_normalize_is_float32_and_epsilon_sets_where_short_vectors_shrink():
    x = np.array([[0.0, 0.0], [3e-4, 4e-4], [3.0, 4.0]], "float16")
    coarse = np.asarray(l2_normalize(x, epsilon=1e-6))
    fine = np.asarray(l2_normalize(x, epsilon=1e-12))
    assert coarse.dtype == fine.dtype == np.float32
    np.testing.assert_array_equal(coarse[0], [0.0, 0.0])  # no NaN for a zero vector
    np.testing.assert_array_equal(fine[0], [0.0, 0.0])
    # norm 5e-4: below sqrt(1e-6) it is scaled down, far above sqrt(1e-12) it is unit length
    assert 0.3 < np.linalg.norm(coarse[1]) < 0.5
    np.testing.assert_allclose(np.linalg.norm(fine[1]), 1.0, atol=1e-3)
    np.testing.assert_allclose(coarse[2], [0.6, 0.8], atol=1e-3)
    np.testing.assert_allclose(fine[2], [0.6, 0.8], atol=1e-3)
