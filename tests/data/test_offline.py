"""The offline tfds builders say that they prepare local files instead of announcing a download."""

from keras_attn.data import digits


def test_offline_preparation_says_nothing_is_downloaded(tmp_path, capsys):
    """tfds announces "Downloading and preparing dataset Unknown size"; the offline builders
    say where their data come from instead (#20)."""
    digits.BundledDigits(data_dir=str(tmp_path)).download_and_prepare()
    out = capsys.readouterr().out
    assert "Downloading" not in out and "Unknown size" not in out
    source = "scikit-learn's bundled digits"
    assert f"Preparing bundled_digits from {source} (nothing is downloaded) into {tmp_path}" in out
    assert f"Prepared bundled_digits in {tmp_path}" in out
