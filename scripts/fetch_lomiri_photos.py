"""Fetches 14 more real photographs from Debian's archive, halved, as a folder to train SR on.

Debian's `lomiri-wallpapers-16.04` and `lomiri-wallpapers-20.04` (the Ubuntu Touch wallpaper
contests) hold photographs of 1.5 to 20 megapixels next to renders and vector art. This script
takes exactly the 14 photographs of `PHOTOS` (checking each JPEG's sha256 and recording its
licence from the package's Debian copyright file, as `keras-attn data fetch-photos` does for the
`photo_collection`), halves each with `tf.image.resize(bicubic, antialias=True)` (the JPEGs are
large and compressed: at half size they carry about as much detail per pixel as the other
training photos, and their compression noise is averaged away), and writes them as PNG with
`LICENSES.json` and a `validation.txt` that holds out 4 of them (`VALIDATION`). The folder
(32 megapixels) is then read by the generic folder builder:

    python scripts/fetch_lomiri_photos.py ~/.keras/datasets/keras_attn_lomiri_photos
    keras-attn train sr --dataset \
      bundled_photos+photo_collection+folder:$HOME/.keras/datasets/keras_attn_lomiri_photos ...

It is kept apart from `photo_collection`, whose shipped training commands must keep
reproducing. The folder is written atomically (all 14 photographs or nothing). `--debs DIR`
takes the two packages' .deb files from DIR instead of `apt-get download`.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
from urllib.parse import unquote

from keras_attn.data import photo_collection as pc

P16 = "lomiri-wallpapers-16.04"
P20 = "lomiri-wallpapers-20.04"
ROOT = "usr/share/backgrounds"
_RELEASE = {P16: "16.04", P20: "20.04"}

# (name written, package, file in ROOT, sha256 of that JPEG). Left out: the renders and vector
# art (analogpattern, umang, Fossa, Infinite-Sea, Painting-Colors).
PHOTOS = (
    (
        "Bridge",
        P16,
        "Bridge_by_Sander_Klootwijk.jpg",
        "bd86b081f9975e2b83527f71e49b9271a8ab40885428395969d9f7d834d7f050",
    ),
    (
        "Dragonfly",
        P16,
        "Dragonfly_by_Bolly.jpg",
        "af5af17841009732def24b09bb1e669a1b09d2b4bdeee7812c371101c30d2bb3",
    ),
    (
        "Picture_0B",
        P16,
        "Picture_0B_by_freespace.jpg",
        "c8c0ab18e48d9e0419fe42881112137f3afafc27dfddc29ec3a6d54c56d225ad",
    ),
    (
        "Picture_1A",
        P16,
        "Picture_1A_by_freespace.jpg",
        "89e86af38d04daaef975665dc2127e9fa76f0fd68f4eea105a2d0ae3390b010b",
    ),
    (
        "Wine",
        P16,
        "Wine_by_Jakkub_Mede.jpg",
        "d2e96e6d4da40dd804b3d0ce295e94de04a2d7d9b6785d42cd9d92ba58bced74",
    ),
    (
        "aitzgorri",
        P16,
        "aitzgorri_by_Aitzol_Berasategi.jpg",
        "66268e7b48f8854d36a28765fac6e23ec1aee251daa6da1f64715f201020ad36",
    ),
    (
        "free",
        P16,
        "free_by_Peter_Nerlich.jpg",
        "85a5453c2fed514c75973016f3d862aca62eb7ca087618822469274ac1092373",
    ),
    (
        "friends",
        P16,
        "friends_by_Aitzol_Berasategi.jpg",
        "cc40e313c74e421edffe3403def413c16878ce14661cce7ec5915baeab35538d",
    ),
    (
        "greentock",
        P16,
        "greentock_by_Peter_Nerlich.jpg",
        "e7b20e2db9dcd6e2b278ca55873c2110b35d89cd38b04d0b18728726888e6889",
    ),
    (
        "life",
        P16,
        "life_by_Aitzol_Berasategi.jpg",
        "4c119350ead80201fe256850c3d316309ddfb4bdf10b235ce982dcde0c667c05",
    ),
    (
        "picosdeeuropa",
        P16,
        "picosdeeuropa_by_Aitzol_Berasategi.jpg",
        "414d0072b2f6f2c555deafeaef6e45c4fed6fa9ad26eba6560ca8803959cf97a",
    ),
    (
        "seeding",
        P16,
        "seeding_by_Clements_Engelhardt.jpg",
        "a5634d1ab5e41a3568e92d4a894a500c92b891f9ff734e50bd224d6e185a605f",
    ),
    (
        "sunset",
        P16,
        "sunset_by_Aitzol_Berasategi.jpg",
        "474dab6a4b9f94dc76c29dfe30e9f5db4af0fd2e33fe5d695f8152b371efca18",
    ),
    (
        "Kleiber",
        P20,
        "Kleiber_by_Lukas_Baubkus.jpg",
        "6572410c09f4492c74ccadde133565a14c0161617d5917d4c820c66d65a44ba7",
    ),
)
# Held out from training: a studio still life (smooth), paint brushes (fine texture, the
# smallest photo), two dogs at a wooden window, a landscape with forest and meadow.
VALIDATION = ("greentock", "Picture_1A", "friends", "aitzgorri")


def halve(jpeg_bytes: bytes) -> bytes:
    """The PNG of the image at half its size (bicubic with antialiasing, rounded to 8 bits).

    `INTEGER_ACCURATE` decodes as Pillow does (TF's default IDCT differs by up to 13 levels).
    """
    import tensorflow as tf

    image = tf.io.decode_jpeg(jpeg_bytes, channels=3, dct_method="INTEGER_ACCURATE")
    size = tf.shape(image)[:2] // 2
    half = tf.image.resize(tf.cast(image, tf.float32), size, "bicubic", antialias=True)
    half = tf.cast(tf.round(tf.clip_by_value(half, 0.0, 255.0)), tf.uint8)
    return tf.io.encode_png(half).numpy()


def fetch(folder, *, debs=None, photos=PHOTOS, validation=VALIDATION) -> pathlib.Path:
    """Writes the halved photographs, `LICENSES.json` and `validation.txt` to `folder`."""
    folder = pathlib.Path(folder).expanduser()
    with tempfile.TemporaryDirectory(prefix="keras_attn_lomiri_") as scratch:
        scratch = pathlib.Path(scratch)
        with pc.atomic_path(folder, directory=True) as target:
            licences = {}
            for package in sorted({p[1] for p in photos}):
                deb, root, stanzas = pc.unpack_package(package, scratch, debs)
                for name, _, member, sha256 in (p for p in photos if p[1] == package):
                    source = root / ROOT / member
                    if not source.is_file():
                        raise RuntimeError(f"{deb.name} has no {member}")
                    digest = pc.sha256_of(source)
                    if digest != sha256:
                        raise RuntimeError(
                            f"{member} in {deb.name} has sha256 {digest}, expected {sha256} "
                            f"(another version of {package}?)"
                        )
                    (target / f"{name}.png").write_bytes(halve(source.read_bytes()))
                    licences[f"{name}.png"] = {
                        "package": f"{package} {unquote(deb.name.split('_')[1])}",
                        "path": f"/{ROOT}/{member}",
                        "sha256": digest,
                        "processing": "halved: tf.image.resize(bicubic, antialias=True), PNG",
                        # the copyright file names the photos by release folder, not by path
                        **pc.licence_of(f"{_RELEASE[package]}/{member}", stanzas),
                    }
            (target / "LICENSES.json").write_text(json.dumps(licences, indent=1, sort_keys=True))
            (target / "validation.txt").write_text("".join(f"{n}.png\n" for n in validation))
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="where to write the photographs (replaced atomically)")
    parser.add_argument("--debs", help="a folder holding the two packages' .deb files")
    args = parser.parse_args(argv)
    try:
        folder = fetch(args.folder, debs=args.debs)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{len(PHOTOS)} photographs ({len(VALIDATION)} held out in validation.txt) in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
