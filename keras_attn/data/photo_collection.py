"""A collection of 22 high-resolution photographs from Debian's archive, fetched offline-friendly.

Debian and Ubuntu ship desktop wallpapers in two packages, `plasma-workspace-wallpapers` (KDE) and
`mate-backgrounds` (MATE). Next to vector art they hold real photographs of 1.3 to 4.9 megapixels
(78 megapixels in all): the 22 listed in `PHOTOS`. `fetch_photo_collection(folder)` downloads the
two packages with `apt-get download` (no root needed), unpacks them with `dpkg-deb -x`, copies
exactly these photographs, checks each file's sha256 against the value recorded here, and writes
`LICENSES.json` with each file's copyright and licence read from the package's Debian copyright
file. The folder is written atomically: it holds all 22 checked photographs or nothing.

`keras-attn data fetch-photos` is the command line of the same function. The photographs are
then read by the generic folder builder (`keras_attn.data.photo_folder`), whose
`photo_collection` config holds out `VALIDATION_PHOTOS` (5 photographs) from every training run.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
from urllib.parse import unquote

from keras_attn._io import atomic_path, sha256_of  # noqa: F401  (sha256_of public here too)

PLASMA = "plasma-workspace-wallpapers"
MATE = "mate-backgrounds"
PACKAGES = (PLASMA, MATE)

# Where each package keeps its files once unpacked, and how its copyright file names them.
_ROOTS = {PLASMA: "usr/share/wallpapers", MATE: "usr/share/backgrounds/mate"}


@dataclasses.dataclass(frozen=True)
class Photo:
    """One photograph of the collection: where it is in its package, and its sha256."""

    name: str
    package: str
    member: str  # path below the package's root (`_ROOTS`), as its copyright file names it
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.name}.jpg"


def _plasma(name: str, sha256: str) -> Photo:
    return Photo(name, PLASMA, f"{name}/contents/images/2560x1600.jpg", sha256)


def _mate(name: str, sha256: str) -> Photo:
    return Photo(name, MATE, f"nature/{name}.jpg", sha256)


PHOTOS = (
    _plasma("BytheWater", "c272434ef39f2abf1ed48a15a8910088020f3165329a5092f3940ec9464bc05f"),
    _plasma("ColdRipple", "05bef6722fc0ed81292cceb3ed026c38d17e510f3c84be7d68610c2b1a723c3f"),
    _plasma("ColorfulCups", "6e0f3a72feb5a4a9fec191b77e34874c3c69e2d93040deb3f07773e73385023d"),
    _plasma("EveningGlow", "586682dcb362b9f620068f10138f87d0d3649939aef238adc5807cb951976a7a"),
    _plasma("FallenLeaf", "95603a6560c7e8d50e0e03b3f4adbe39c5258c72528e74e4ecaea1daf4e499de"),
    _plasma("Grey", "88c31d8944b7e6935d1b9a296654c692f0772cb512491713eb30a972a604c0ed"),
    _plasma("Kite", "bdca288ce296a981e80659c021cf707caddc702c0c8d4247e60bd618476d47f8"),
    _plasma("OneStandsOut", "cb507baf1dafdcae362264f3aba9483ed4be5f6c9fdd770f0ec0920c6d9e80fd"),
    _plasma("Path", "7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8"),
    _plasma("summer_1am", "c868b50789591dd42910153c768053f1ba0a98cb36bbfc2b7a96a1045d0477f8"),
    _mate("Aqua", "5c30118205982da441bf7e6a1ada636a8a0be879408140b3148280c665ed6bce"),
    _mate("Blinds", "f7aac0dcc2e06d0491643e84df3da1d9db7c4610f58806a880d56e074799f600"),
    _mate("Dune", "8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91"),
    _mate("FreshFlower", "972b0a0c4e5e3fa93f4f244fc84bc64b121a5eac3aaa5856f1308c1f38a02f8e"),
    _mate("Garden", "d3095ee09d425ef23d27155412136cf14fc3c9af76ca58b452f55e23da324e78"),
    _mate("GreenMeadow", "8fa0de0aa4089f7319c9fb7a6d006d4cab6023e8c8853731557cff53567b4832"),
    _mate("LadyBird", "e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d"),
    _mate("RainDrops", "3e4ea9671c28c90a86cf67b3db9daf18c4741587c596333a7529ca589aaa0c16"),
    _mate("Storm", "77ca53077831d3237f73393a91fc879158abc046d852941c26e90de336356957"),
    _mate("TwoWings", "665e5abf8a5399070a91a9a8e455fe071e5b61697ff78fdeda4e9843ef545aeb"),
    _mate("Wood", "19c78500ac00a622e19907ab9cc7d06d46fe08c4a6142759a84195696150ec07"),
    _mate("YellowFlower", "254da96256acb7add685679775a04d1e4a5bc8cd13e5a5a3d61351ce198a5306"),
)

# Held out from every training run: detail (boats), fine texture (moss), grayscale architecture,
# a macro with bokeh, a landscape. Listed in the folder's `validation.txt` by the fetch.
VALIDATION_PHOTOS = ("EveningGlow", "OneStandsOut", "Grey", "LadyBird", "Storm")


def default_folder() -> pathlib.Path:
    """Where the collection is fetched to and read from by default:
    `$KERAS_ATTN_PHOTO_COLLECTION`, else `~/.keras/datasets/keras_attn_photo_collection`
    (Keras's own data-set cache)."""
    configured = os.environ.get("KERAS_ATTN_PHOTO_COLLECTION")
    if configured:
        return pathlib.Path(configured).expanduser()
    return pathlib.Path.home() / ".keras" / "datasets" / "keras_attn_photo_collection"


# --------------------------------------------------------------------------- licences


def parse_copyright(text: str) -> list[dict[str, str]]:
    """The `Files` stanzas of a machine-readable Debian copyright file (DEP-5), in order.

    Each stanza gives `files` (the glob patterns, space separated), `copyright` and `license`
    (the licence's short name: its first line).
    """
    stanzas, current, key = [], {}, None
    for line in text.splitlines() + [""]:
        if not line.strip():
            if "files" in current:
                stanzas.append(current)
            current, key = {}, None
            continue
        if line[0] in " \t" and key:
            if key != "license":  # a licence's continuation lines are its full text
                current[key] = f"{current[key]} {line.strip()}".strip()
            continue
        field, _, value = line.partition(":")
        key = field.strip().lower()
        current[key] = value.strip()
    return stanzas


def licence_of(member: str, stanzas: list[dict[str, str]]) -> dict[str, str]:
    """The copyright and licence of `member`: the last stanza whose pattern matches (DEP-5)."""
    found = None
    for stanza in stanzas:
        if any(fnmatch.fnmatchcase(member, pattern) for pattern in stanza["files"].split()):
            found = stanza
    if found is None:
        raise ValueError(f"No Files stanza of the copyright file matches {member!r}")
    return {"copyright": found.get("copyright", ""), "license": found.get("license", "")}


# --------------------------------------------------------------------------- fetch


def _download(package: str, into: pathlib.Path) -> pathlib.Path:
    """`apt-get download PACKAGE` into `into`; the .deb file's path."""
    if shutil.which("apt-get") is None:
        raise RuntimeError(
            f"apt-get is not available: fetch the Debian package {package!r} by hand and "
            "pass the folder holding its .deb with --debs"
        )
    result = subprocess.run(
        ["apt-get", "download", package], cwd=into, capture_output=True, text=True
    )
    debs = sorted(into.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not debs:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(
            f"apt-get download {package} failed ({last}); run `apt-get update` once, or fetch "
            "the .deb by hand and pass its folder with --debs"
        )
    return debs[-1]


def _unpack(deb: pathlib.Path, into: pathlib.Path) -> pathlib.Path:
    if shutil.which("dpkg-deb") is None:
        raise RuntimeError("dpkg-deb is not available: it unpacks the Debian packages")
    result = subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"dpkg-deb -x {deb.name} failed: {result.stderr.strip()}")
    return into


def unpack_package(package: str, scratch: pathlib.Path, debs=None):
    """`(deb, root, stanzas)`: PACKAGE's .deb (from the folder `debs`, else `apt-get
    download`), unpacked below `scratch`, and the `Files` stanzas of its copyright file."""
    if debs is not None:
        found = sorted(pathlib.Path(debs).glob(f"{package}_*.deb"))
        if not found:
            raise RuntimeError(f"No {package}_*.deb in {debs}")
        deb = found[-1]
    else:
        deb = _download(package, scratch)
    root = _unpack(deb, scratch / package)
    copyright_file = root / "usr" / "share" / "doc" / package / "copyright"
    return deb, root, parse_copyright(copyright_file.read_text(encoding="utf-8"))


def fetch_photo_collection(
    folder: str | os.PathLike | None = None,
    *,
    debs: str | os.PathLike | None = None,
    force: bool = False,
    photos: tuple[Photo, ...] = PHOTOS,
    validation: tuple[str, ...] = VALIDATION_PHOTOS,
) -> pathlib.Path:
    """Fetches the 22 photographs into `folder` (default `default_folder()`); returns it.

    Args:
        folder: where the photographs, `LICENSES.json` and `validation.txt` go. Written
            atomically: a failed fetch leaves no partial folder.
        debs: a folder that already holds the two packages' `.deb` files (skips `apt-get`).
        force: fetch again even if `folder` already holds the checked collection.
        photos, validation: the table of photographs and the held-out names (default: the
            collection; tests pass their own).

    Raises:
        RuntimeError: apt-get/dpkg-deb missing or failing, or a photograph whose sha256 differs
            from the recorded one (another package version); the message says which.
    """
    folder = pathlib.Path(folder) if folder is not None else default_folder()
    if not force and is_complete(folder, photos):
        return folder
    with tempfile.TemporaryDirectory(prefix="keras_attn_photos_") as scratch:
        scratch = pathlib.Path(scratch)
        with atomic_path(folder, directory=True) as target:
            licences = {}
            for package in sorted({photo.package for photo in photos}):
                deb, root, stanzas = unpack_package(package, scratch, debs)
                for photo in (p for p in photos if p.package == package):
                    source = root / _ROOTS[package] / photo.member
                    if not source.is_file():
                        raise RuntimeError(f"{deb.name} has no {photo.member}")
                    digest = sha256_of(source)
                    if digest != photo.sha256:
                        raise RuntimeError(
                            f"{photo.member} in {deb.name} has sha256 {digest}, expected "
                            f"{photo.sha256} (another version of {package}?)"
                        )
                    shutil.copyfile(source, target / photo.filename)
                    licences[photo.filename] = {
                        "package": f"{package} {unquote(deb.name.split('_')[1])}",
                        "path": f"/{_ROOTS[package]}/{photo.member}",
                        "sha256": digest,
                        **licence_of(photo.member, stanzas),
                    }
            (target / "LICENSES.json").write_text(json.dumps(licences, indent=1, sort_keys=True))
            (target / "validation.txt").write_text("".join(f"{name}.jpg\n" for name in validation))
    return folder


def is_complete(folder: str | os.PathLike, photos: tuple[Photo, ...] = PHOTOS) -> bool:
    """Whether `folder` holds every photograph with its recorded sha256 and the licences."""
    folder = pathlib.Path(folder)
    if not (folder / "LICENSES.json").is_file():
        return False
    return all(
        (folder / p.filename).is_file() and sha256_of(folder / p.filename) == p.sha256
        for p in photos
    )
