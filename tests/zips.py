"""Hand-built zip files for the safe-zip tests (bundles and archives): any names, duplicates included,
any compression method and file mode, so that each refusal can be provoked on purpose."""

from __future__ import annotations

import io
import stat
import warnings
import zipfile


def zip_bytes(members: list[tuple[str, bytes]], compress: int = zipfile.ZIP_STORED,
              attrs: dict[str, int] | None = None) -> bytes:
    """A zip of `members` in order; `attrs` overrides a member's external attributes (e.g. a symlink)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are written on purpose
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = compress
            info.external_attr = (attrs or {}).get(name, (stat.S_IFREG | 0o644) << 16)
            archive.writestr(info, data)
    return buffer.getvalue()
