"""Where `har deploy` may put a bundle, and putting it there without deleting anything it did not write.

`--out` may name a new folder, an empty folder, or an earlier bundle: a folder whose `report.json` (the
manifest every bundle carries, written last) lists every entry in it. Anything else (a file, a symbolic link,
a folder with other files, `/`) belongs to the user and is refused with exit code 2 before any work is done,
and checked again just before the finished bundle is moved in.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from training.errors import HarError
from training.validate import check_parent_folder

REPORT = "report.json"  # the bundle's report (deploy/report.py) and its manifest: written last, lists every entry


def bundle_entries(folder: Path) -> set[str] | None:
    """The top-level names an earlier bundle's manifest lists, or None when `folder` holds no har bundle."""
    try:
        report = json.loads((folder / REPORT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = report.get("files") if isinstance(report, dict) else None
    if not (isinstance(files, list) and all(isinstance(f, str) and f for f in files) and "device" in report):
        return None
    return {f.split("/")[0] for f in files}


def check_out_folder(out: Path) -> Path:
    """The absolute bundle folder for `out` ('.' and '..' folded, symbolic links not followed) if a bundle may
    be placed there; otherwise a HarError that says why."""
    folder = Path(os.path.abspath(out))
    if folder == folder.parent:
        raise HarError(f"--out {out}: the root folder cannot hold a bundle; give a new folder name")
    if folder.is_symlink():
        raise HarError(f"--out {out} is a symbolic link: give the folder itself or a new folder name")
    if folder.exists() and not folder.is_dir():
        raise HarError(f"--out {out} is a file, not a folder: give a new folder name")
    if folder.is_dir():
        present = {p.name for p in folder.iterdir()}
        listed = bundle_entries(folder) if present else set()
        if listed is None:
            raise HarError(f"--out {out} is a folder that is not empty and holds no har bundle: give a new or "
                           "empty folder (har deploy replaces only its own earlier bundles)")
        if present - listed:
            others = ", ".join(sorted(present - listed)[:3])
            raise HarError(f"--out {out} holds files that are not part of its earlier bundle ({others}): move "
                           "them or give another folder")
    check_parent_folder(folder, "--out")
    return folder


def publish_bundle(staging: Path, out: Path) -> None:
    """Move the finished `staging` folder (a sibling of `out`) to `out`: renamed into place when `out` is new,
    its entries moved in when `out` is an empty folder (which stays the same folder, also when it is the working
    directory), or swapped with an earlier bundle, which is deleted only once the new one is in place."""
    out = check_out_folder(out)
    if not out.exists():
        staging.rename(out)
    elif not any(out.iterdir()):
        for entry in sorted(staging.iterdir(), key=lambda p: p.name == REPORT):  # the manifest last
            entry.rename(out / entry.name)
        staging.rmdir()
    else:
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        out.rename(old / out.name)
        staging.rename(out)
        shutil.rmtree(old)


@contextmanager
def staged_bundle(out: Path) -> Iterator[Path]:
    """A new staging folder beside `out` to write a bundle into (its manifest last). When the block ends normally
    the bundle is published to `out` (`publish_bundle`); on any error or Ctrl-C the staging folder is removed and
    `out` is left as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        yield staging
        publish_bundle(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
