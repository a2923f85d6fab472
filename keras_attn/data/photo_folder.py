"""A tfds builder over any folder of photographs (a user's own, or the Debian photo collection).

`PhotoFolder` prepares a folder of image files (JPEG, PNG, TIFF, WebP, BMP: whatever Pillow reads)
into an ordinary tfds dataset with a `train` and a `validation` split. Large photographs are cut
into tiles of at most `tile_size` pixels a side when the dataset is prepared (tiles of nearly equal
size on a grid, none smaller than half a tile where the photo allows), so a training pipeline
never decodes a 5-megapixel JPEG to take one crop, and a shuffle buffer of tiles mixes crops from
many photographs.

The validation split is fixed by the folder: the files named in its `validation.txt` (one file
name per line), or, without that file, every fifth file in name order (the 5th, 10th, ...; at
least one where the folder has two or more images). Everything else is `train`.

Two ways in:
- `photo_folder_builder("/path/to/photos")`: a builder whose config is named after the folder
  (its name plus a hash of its absolute path), prepared into tfds's data directory;
  `super_resolution_dataset("folder:/path/to/photos", ...)` does this for you.
- `tfds.load("photo_folder/photo_collection")`: the 22 photographs of
  `keras_attn.data.photo_collection`, from `$KERAS_ATTN_PHOTO_COLLECTION` or the default folder
  that `keras-attn data fetch-photos` writes; 5 of them (`VALIDATION_PHOTOS`) are held out.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re

import numpy as np
import tensorflow_datasets as tfds

from keras_attn.data import photo_collection
from keras_attn.data.offline import OfflineBuilder
from keras_attn.utils.images import read_rgb  # noqa: F401  (public here too)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")
VALIDATION_LIST = "validation.txt"
VALIDATION_EVERY = 5


class PhotoFolderConfig(tfds.core.BuilderConfig):
    """A folder of photographs (None: the photo collection's folder) and the tile size."""

    def __init__(self, *, folder: str | None = None, tile_size: int = 512, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(tile_size, int) or tile_size < 32:
            raise ValueError(f"tile_size must be an integer >= 32. Received: {tile_size!r}")
        self.folder = folder
        self.tile_size = tile_size


def image_files(folder: str | os.PathLike) -> list[pathlib.Path]:
    """The image files directly in `folder`, sorted by name."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    )


def split_files(folder: str | os.PathLike) -> dict[str, list[pathlib.Path]]:
    """`{"train": [...], "validation": [...]}`: the folder's images by the rule above."""
    files = image_files(folder)
    if not files:
        raise ValueError(f"{folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    listed = pathlib.Path(folder) / VALIDATION_LIST
    if listed.is_file():
        names = [line.strip() for line in listed.read_text().splitlines() if line.strip()]
        by_name = {path.name: path for path in files}
        missing = [name for name in names if name not in by_name]
        if missing:
            raise ValueError(f"{listed} names files that are not in the folder: {missing}")
        validation = [by_name[name] for name in names]
    elif len(files) >= 2:
        validation = files[VALIDATION_EVERY - 1 :: VALIDATION_EVERY] or [files[-1]]
    else:
        validation = []
    train = [path for path in files if path not in validation]
    return {"train": train, "validation": validation}


def source_folder(name: str) -> pathlib.Path | None:
    """The folder of image files behind the dataset `name`: the photo collection's folder
    (checked to be complete) for `"photo_collection"`, `PATH` for `"folder:PATH"`; None for any
    other name (a tfds dataset)."""
    if name == "photo_collection":
        folder = photo_collection.default_folder()
        if not photo_collection.is_complete(folder):
            raise ValueError(
                f"The photo collection is not in {folder}: run `keras-attn data fetch-photos` "
                "(or set KERAS_ATTN_PHOTO_COLLECTION to the folder that holds it)"
            )
        return folder
    if name.startswith("folder:"):
        return pathlib.Path(name[len("folder:") :]).expanduser()
    return None


def tile_bounds(length: int, tile_size: int) -> list[tuple[int, int]]:
    """`[start, stop)` ranges cutting `length` into ceil(length / tile_size) nearly equal tiles."""
    count = max(1, -(-length // tile_size))
    edges = np.linspace(0, length, count + 1).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))


class PhotoFolder(OfflineBuilder):
    """A folder of photographs, tiled, with a fixed validation subset (see the module doc)."""

    SOURCE = "a folder of image files"

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Tiles of at most 512 pixels a side; validation.txt or every 5th."}
    BUILDER_CONFIGS = [
        PhotoFolderConfig(
            name="photo_collection",
            description="22 photographs from Debian's plasma-workspace-wallpapers and "
            "mate-backgrounds (keras-attn data fetch-photos); 5 held out for validation.",
        )
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=(None, None, 3)), "name": tfds.features.Text()}
            ),
        )

    def _folder(self) -> pathlib.Path:
        if self.builder_config.folder is not None:
            return pathlib.Path(self.builder_config.folder)
        return source_folder("photo_collection")

    def _split_generators(self, dl_manager):
        del dl_manager  # local files only
        splits = split_files(self._folder())
        return {name: self._generate_examples(files) for name, files in splits.items() if files}

    def _generate_examples(self, files):
        tile = self.builder_config.tile_size
        for path in files:
            image = read_rgb(path)
            height, width = image.shape[:2]
            for row, (top, bottom) in enumerate(tile_bounds(height, tile)):
                for column, (left, right) in enumerate(tile_bounds(width, tile)):
                    key = f"{path.name}/r{row}c{column}"
                    yield key, {"image": image[top:bottom, left:right], "name": path.stem}


def photo_folder_builder(
    folder: str | os.PathLike, *, data_dir: str | None = None, tile_size: int = 512
) -> tfds.core.DatasetBuilder:
    """A `PhotoFolder` builder over `folder`, prepared (once) into `data_dir`."""
    folder = pathlib.Path(folder).expanduser().resolve()
    splits = split_files(folder)  # a clear error before tfds starts
    # The config name changes with the folder's path, tile size and files (split, name, size),
    # so an edited folder or validation.txt is prepared again instead of reading a stale copy.
    listing = sorted(
        (split, p.name, p.stat().st_size) for split, files in splits.items() for p in files
    )
    stem = re.sub(r"[^a-z0-9]+", "_", folder.name.lower()).strip("_") or "photos"
    digest = hashlib.sha256(f"{folder}|{tile_size}|{listing}".encode()).hexdigest()[:8]
    config = PhotoFolderConfig(
        name=f"{stem}_{digest}", folder=str(folder), tile_size=tile_size, description=str(folder)
    )
    builder = PhotoFolder(config=config, data_dir=data_dir)
    builder.download_and_prepare()
    return builder
