"""`OfflineBuilder`: the base of the tfds builders that prepare from local files.

tfds announces every preparation as a download with its size ("Downloading and preparing
dataset Unknown size (download: Unknown size, ...)"), which reads like a network fetch that
cannot work offline. These builders download nothing, so they say what they do instead:
"Preparing bundled_photos from ... (nothing is downloaded) into DIR ...", then "Prepared
bundled_photos in DIR; later calls reuse it." Everything
else, including tfds's progress bars, is tfds's own.
"""

from __future__ import annotations

import tensorflow_datasets as tfds


class OfflineBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A `GeneratorBasedBuilder` whose data are local files (see the module docstring)."""

    SOURCE = "local files"  # what the preparation message names as the data's origin

    def _log_download_bytes(self) -> None:  # tfds's hook for the "Downloading ..." line
        print(
            f"Preparing {self.name} from {self.SOURCE} (nothing is downloaded) "
            f"into {self.data_dir} ...",
            flush=True,
        )

    def _log_download_done(self) -> None:  # tfds's "downloaded and prepared" line
        print(f"Prepared {self.name} in {self.data_dir}; later calls reuse it.", flush=True)
