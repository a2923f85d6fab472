"""scripts/fetch_lomiri_photos.py on two tiny Debian packages built in the test (no network):
real photographs inside, halved to PNG, sha256 checked, licences read, folder written atomically
and readable by the folder builder."""

import hashlib
import io
import json
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_attn.data import bundled_photos, photo_folder
from tests.helpers import build_deb, load_script

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")

COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: warty-final-ubuntu.png
Copyright: 2004, Someone
License: CC-BY-SA-3.0

Files: {release}/*_by_A.jpg
Copyright: Aitzol Berasategi, 2018
License: CC-BY-4.0

Files: {release}/*_by_B.jpg
Copyright: Clemens Engelhardt, 2018
License: CC0-1.0
"""


@pytest.fixture(scope="module")
def script():
    return load_script(ROOT / "scripts" / "fetch_lomiri_photos.py", "fetch_lomiri_photos")


def _jpeg(name):
    buffer = io.BytesIO()
    Image.fromarray(bundled_photos.load_photo(name)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def debs(script, tmp_path_factory):
    """Both packages, with real photographs (odd and even sizes) next to a render that must be
    left out; and the matching table of photos."""
    root = tmp_path_factory.mktemp("lomiri_debs")
    jpegs = {n: _jpeg(n) for n in ("astronaut", "coffee", "rocket")}
    files16 = {"astronaut_by_A.jpg": jpegs["astronaut"], "coffee_by_B.jpg": jpegs["coffee"]}
    for package, release, files in (
        (script.P16, "16.04", files16),
        (script.P20, "20.04", {"rocket_by_A.jpg": jpegs["rocket"], "render.jpg": b"render"}),
    ):
        build_deb(
            root,
            package,
            {f"{script.ROOT}/{name}": data for name, data in files.items()},
            COPYRIGHT.format(release=release),
        )
    digest = {n: hashlib.sha256(b).hexdigest() for n, b in jpegs.items()}
    photos = (
        ("Astronaut", script.P16, "astronaut_by_A.jpg", digest["astronaut"]),
        ("Coffee", script.P16, "coffee_by_B.jpg", digest["coffee"]),
        ("Rocket", script.P20, "rocket_by_A.jpg", digest["rocket"]),
    )
    return root, photos, jpegs


def test_the_recorded_table_is_14_photos_with_4_held_out(script):
    names = [p[0] for p in script.PHOTOS]
    assert len(names) == len(set(names)) == 14
    assert len(script.VALIDATION) == 4 and set(script.VALIDATION) <= set(names)
    assert {p[1] for p in script.PHOTOS} == {script.P16, script.P20}
    assert all(len(p[3]) == 64 and int(p[3], 16) >= 0 for p in script.PHOTOS)


def test_fetch_halves_each_photo_and_records_its_licence(script, debs, tmp_path):
    root, photos, jpegs = debs
    folder = script.fetch(tmp_path / "photos", debs=root, photos=photos, validation=("Coffee",))
    assert sorted(p.name for p in folder.iterdir()) == [
        "Astronaut.png", "Coffee.png", "LICENSES.json", "Rocket.png", "validation.txt",
    ]  # fmt: skip
    assert (folder / "validation.txt").read_text() == "Coffee.png\n"
    for name, source in (("Astronaut", "astronaut"), ("Coffee", "coffee"), ("Rocket", "rocket")):
        written = np.asarray(Image.open(folder / f"{name}.png"))
        # decoded by Pillow (not by the script's TensorFlow decoder), halved, rounded
        full = np.asarray(Image.open(io.BytesIO(jpegs[source])).convert("RGB"))
        assert written.shape == (full.shape[0] // 2, full.shape[1] // 2, 3)
        half = tf.image.resize(full.astype("float32"), written.shape[:2], "bicubic", antialias=True)
        expected = np.round(np.clip(half.numpy(), 0, 255)).astype(np.uint8)
        assert np.abs(written.astype(int) - expected).max() <= 1
        assert np.mean(written != expected) < 0.01
    licences = json.loads((folder / "LICENSES.json").read_text())
    assert licences["Astronaut.png"]["license"] == "CC-BY-4.0"
    assert licences["Coffee.png"]["license"] == "CC0-1.0"
    assert licences["Coffee.png"]["copyright"] == "Clemens Engelhardt, 2018"
    assert licences["Rocket.png"]["package"] == f"{script.P20} 1:1.0-1"
    assert licences["Rocket.png"]["path"] == f"/{script.ROOT}/rocket_by_A.jpg"
    assert licences["Rocket.png"]["sha256"] == photos[2][3]
    # the folder builder reads it, with the validation photo held out
    split = photo_folder.split_files(folder)
    assert [p.name for p in split["train"]] == ["Astronaut.png", "Rocket.png"]
    assert [p.name for p in split["validation"]] == ["Coffee.png"]


def test_a_wrong_sha256_names_the_file_and_leaves_nothing(script, debs, tmp_path):
    root, photos, _ = debs
    wrong = photos[:2] + ((photos[2][0], photos[2][1], photos[2][2], "0" * 64),)
    target = tmp_path / "photos"
    with pytest.raises(RuntimeError, match="rocket_by_A.jpg .* has sha256 .* expected 0000"):
        script.fetch(target, debs=root, photos=wrong)
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_the_command_line_reports_a_missing_package(script, tmp_path, capsys):
    assert script.main([str(tmp_path / "photos"), "--debs", str(tmp_path)]) == 1
    assert "No lomiri-wallpapers-16.04_*.deb in" in capsys.readouterr().err
    assert not (tmp_path / "photos").exists()
