"""Rewrite a wheel's METADATA so Rasa 3.6 installs on Python 3.11 (see docs/rasa.md).

Rasa Open Source 3.6.x and rasa-sdk 3.6.x declare `Requires-Python <3.11` and pin numpy, scipy,
scikit-learn, ... only under `python_version < "3.11"` markers, so on 3.11 the pins vanish and pip
picks releases that do not work together. We widen both to 3.11, lift rasa's `matplotlib <3.6` pin
(3.5 has no cp311 wheel) and update METADATA's hash in RECORD so pip accepts the wheel.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path


def patch_metadata(text: str) -> str:
    """The METADATA text with the Python bound widened to 3.11 and matplotlib allowed up to 3.6.x."""
    text = re.sub(r"^Requires-Python: .*$", "Requires-Python: <3.12,>=3.8", text, count=1, flags=re.M)
    text = re.sub(r"""python_version\s*<\s*(["'])3\.11\1""", r'python_version < "3.12"', text)
    return re.sub(r"^(Requires-Dist: matplotlib\b[^\n]*?)<3\.6\b", r"\g<1><3.7", text, flags=re.M)


def record_line(name: str, data: bytes) -> str:
    """A RECORD line: path, urlsafe base64 sha256 without padding, size."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def patch_wheel(src: Path, dst: Path) -> None:
    """Copy the wheel `src` to `dst` with METADATA patched and RECORD updated to match."""
    with zipfile.ZipFile(src) as zin:
        names = zin.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        record_name = next(n for n in names if n.endswith(".dist-info/RECORD"))
        meta = patch_metadata(zin.read(meta_name).decode("utf-8")).encode("utf-8")
        record_lines = zin.read(record_name).decode("utf-8").splitlines()
        record = (
            "\n".join(
                record_line(meta_name, meta) if line.split(",", 1)[0] == meta_name else line
                for line in record_lines
            )
            + "\n"
        )
        with tempfile.NamedTemporaryFile(dir=dst.parent, delete=False, suffix=".whl") as tmp:
            tmp_path = Path(tmp.name)
        with zipfile.ZipFile(tmp_path, "w", zipfile.ZIP_DEFLATED) as zout:
            for info in zin.infolist():
                if info.filename == meta_name:
                    zout.writestr(info, meta)
                elif info.filename == record_name:
                    zout.writestr(info, record.encode("utf-8"))
                else:
                    zout.writestr(info, zin.read(info.filename))
    shutil.move(tmp_path, dst)


def main(argv: list[str]) -> int:
    """Patch each wheel given as `src` into directory `argv[-1]` under the same file name."""
    if len(argv) < 2:
        print("usage: patch_wheel_metadata.py WHEEL... OUT_DIR", file=sys.stderr)
        return 2
    out_dir = Path(argv[-1])
    out_dir.mkdir(parents=True, exist_ok=True)
    for src in map(Path, argv[:-1]):
        patch_wheel(src, out_dir / src.name)
        print(f"patched {src.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
