"""The photo collection's fetch, on two tiny Debian packages built in the test (no network):
real photographs inside, a DEP-5 copyright file, sha256 checks, licences, atomic folder."""

import json
import pathlib
import shutil

import numpy as np
import pytest
from PIL import Image

import keras_attn_cli as cli
from keras_attn.data import bundled_photos, photo_collection
from keras_attn.data.photo_collection import MATE, PLASMA, Photo
from tests.helpers import build_deb

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")

MATE_COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: mate-backgrounds

Files: *
Copyright: 2011 Perberos
License: GPL-2+

Files: nature/Astronaut.jpg
       nature/Rocket.jpg
Copyright: 2008, NASA
License: public-domain
 Works of the US government.

Files: desktop/Ubuntu-*.png
Copyright: 2014 Goce Mitevski
License: CC-BY-SA-4.0
"""

PLASMA_COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2014 KDE Visual Design Group
License: GPL-2+
 This program is free software.
"""


def _jpeg(name: str, tmp_path: pathlib.Path) -> bytes:
    path = tmp_path / f"{name}.jpg"
    Image.fromarray(bundled_photos.load_photo(name)).save(path, quality=90)
    return path.read_bytes()


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    """Two packages named like the real ones, with three real photographs and the vector-art
    neighbours that must be left out; and the matching table of `Photo`s."""
    root = tmp_path_factory.mktemp("debs")
    astronaut, rocket, camera = (_jpeg(n, root) for n in ("astronaut", "rocket", "camera"))
    build_deb(
        root,
        MATE,
        {
            "usr/share/backgrounds/mate/nature/Astronaut.jpg": astronaut,
            "usr/share/backgrounds/mate/nature/Rocket.jpg": rocket,
            "usr/share/backgrounds/mate/desktop/Ubuntu-Mate-Cold.png": b"not a photo",
        },
        MATE_COPYRIGHT,
    )
    build_deb(
        root,
        PLASMA,
        {"usr/share/wallpapers/Camera/contents/images/2560x1600.jpg": camera},
        PLASMA_COPYRIGHT,
    )
    sha = photo_collection.sha256_of
    photos = (
        Photo("Astronaut", MATE, "nature/Astronaut.jpg", sha(root / "astronaut.jpg")),
        Photo("Rocket", MATE, "nature/Rocket.jpg", sha(root / "rocket.jpg")),
        Photo("Camera", PLASMA, "Camera/contents/images/2560x1600.jpg", sha(root / "camera.jpg")),
    )
    return root, photos


def test_parse_copyright_takes_the_last_matching_stanza():
    stanzas = photo_collection.parse_copyright(MATE_COPYRIGHT)
    assert [s["license"] for s in stanzas] == ["GPL-2+", "public-domain", "CC-BY-SA-4.0"]
    assert stanzas[1]["files"] == "nature/Astronaut.jpg nature/Rocket.jpg"
    assert photo_collection.licence_of("nature/Rocket.jpg", stanzas) == {
        "copyright": "2008, NASA",
        "license": "public-domain",
    }
    assert photo_collection.licence_of("nature/Other.jpg", stanzas)["license"] == "GPL-2+"
    assert photo_collection.licence_of("desktop/Ubuntu-Mate-Cold.png", stanzas)["license"] == (
        "CC-BY-SA-4.0"
    )
    with pytest.raises(ValueError, match="No Files stanza"):
        photo_collection.licence_of("x.jpg", photo_collection.parse_copyright("Files: a/*\n"))


def test_the_recorded_collection_is_22_photos_with_5_held_out():
    names = [photo.name for photo in photo_collection.PHOTOS]
    assert len(names) == len(set(names)) == 22
    assert set(photo_collection.VALIDATION_PHOTOS) <= set(names)
    assert len(photo_collection.VALIDATION_PHOTOS) == 5
    assert all(len(photo.sha256) == 64 for photo in photo_collection.PHOTOS)


@needs_dpkg
def test_fetch_copies_exactly_the_photos_with_checksums_and_licences(debs, tmp_path):
    root, photos = debs
    folder = photo_collection.fetch_photo_collection(
        tmp_path / "photos", debs=root, photos=photos, validation=("Rocket",)
    )
    assert sorted(p.name for p in folder.iterdir()) == [
        "Astronaut.jpg",
        "Camera.jpg",
        "LICENSES.json",
        "Rocket.jpg",
        "validation.txt",
    ]
    licences = json.loads((folder / "LICENSES.json").read_text())
    assert licences["Rocket.jpg"]["license"] == "public-domain"
    assert licences["Rocket.jpg"]["package"] == f"{MATE} 1:1.0-1"
    assert licences["Camera.jpg"]["copyright"] == "2014 KDE Visual Design Group"
    assert licences["Camera.jpg"]["path"] == (
        "/usr/share/wallpapers/Camera/contents/images/2560x1600.jpg"
    )
    assert (folder / "validation.txt").read_text() == "Rocket.jpg\n"
    assert photo_collection.is_complete(folder, photos)
    decoded = np.asarray(Image.open(folder / "Camera.jpg"))
    assert decoded.shape[:2] == bundled_photos.load_photo("camera").shape[:2]


@needs_dpkg
def test_a_checksum_mismatch_fails_and_leaves_no_folder(debs, tmp_path):
    root, photos = debs
    wrong = (*photos[:2], Photo("Camera", PLASMA, photos[2].member, "0" * 64))
    with pytest.raises(RuntimeError, match="has sha256 .* expected 0000"):
        photo_collection.fetch_photo_collection(tmp_path / "photos", debs=root, photos=wrong)
    assert not (tmp_path / "photos").exists()
    assert [p for p in tmp_path.iterdir()] == []  # no temporary sibling either


def test_missing_packages_name_the_package(tmp_path):
    with pytest.raises(RuntimeError, match=f"No {MATE}_\\*.deb in"):
        photo_collection.fetch_photo_collection(tmp_path / "photos", debs=tmp_path)
    assert not (tmp_path / "photos").exists()


@needs_dpkg
def test_cli_data_fetch_photos(debs, tmp_path, capsys, monkeypatch):
    root, photos = debs
    monkeypatch.setattr(photo_collection, "PHOTOS", photos)
    monkeypatch.setattr(photo_collection, "VALIDATION_PHOTOS", ("Camera",))
    code = cli.main(["data", "fetch-photos", "--debs", str(root), "--output", str(tmp_path / "p")])
    out = capsys.readouterr().out
    assert code == 0
    assert "3 photographs" in out and str(tmp_path / "p") in out
    assert (tmp_path / "p" / "validation.txt").read_text() == "Camera.jpg\n"
