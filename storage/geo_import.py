"""Import the official GeoNames postal-code file (`NL.zip` or `NL.txt`) into our PC4 table format."""

from __future__ import annotations

import csv
import io
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from storage.geo import SHIPPED_MUNICIPALITIES

GEONAMES_NL_URL = "https://download.geonames.org/export/zip/NL.zip"
PC4_COLUMNS = [
    "pc4",
    "lat",
    "lon",
    "plaatsen",
    "gemeentecode",
    "gemeentenaam",
    "provincie",
    "alle_gemeentecodes",
]

Progress = Callable[[int], None]


class PostcodeImportError(Exception):
    """A file that is not a GeoNames postal-code dump."""


@dataclass(frozen=True)
class Municipality:
    """A municipality as CBS names it: code (`0153`), official name and province."""

    code: str
    name: str
    province: str


def read_municipalities(path: Path = SHIPPED_MUNICIPALITIES) -> dict[str, Municipality]:
    """The CBS municipality table (`gemeentecode,statcode,gemeentenaam,provincie`) by code."""
    with path.open(encoding="utf-8", newline="") as handle:
        return {
            row["gemeentecode"]: Municipality(row["gemeentecode"], row["gemeentenaam"], row["provincie"])
            for row in csv.DictReader(handle)
        }


def read_geonames_lines(source: Path) -> list[str]:
    """The lines of `NL.txt`, read from the zip or the text file."""
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            names = [n for n in archive.namelist() if n.upper().endswith("NL.TXT")]
            if not names:
                raise PostcodeImportError(f"{source} holds no NL.txt")
            return archive.read(names[0]).decode("utf-8").splitlines()
    return source.read_text(encoding="utf-8").splitlines()


def geonames_to_pc4(
    lines: Iterable[str],
    progress: Progress | None = None,
    municipalities: Mapping[str, Municipality] | None = None,
) -> list[dict[str, str]]:
    """Group GeoNames rows by PC4: mean of the place points, most frequent municipality.

    With `municipalities` (CBS), a municipality's name and province are the official ones: GeoNames
    spells some differently or in English.
    """
    groups: dict[str, list[list[str]]] = defaultdict(list)
    for number, line in enumerate(lines, 1):
        cols = line.rstrip("\n").split("\t")
        if len(cols) < 11 or cols[0] != "NL":
            raise PostcodeImportError(f"line {number} is not a GeoNames NL row")
        groups[cols[1][:4]].append(cols)
        if progress:
            progress(1)
    rows = []
    for pc4, members in sorted(groups.items()):
        codes = [m[6] for m in members if m[6]]
        code = max(set(codes), key=codes.count) if codes else ""
        name = next((m[5] for m in members if m[6] == code), "")
        province = members[0][3]
        official = (municipalities or {}).get(code)
        if official is not None:
            name, province = official.name, official.province
        rows.append(
            {
                "pc4": pc4,
                "lat": f"{sum(float(m[9]) for m in members) / len(members):.5f}",
                "lon": f"{sum(float(m[10]) for m in members) / len(members):.5f}",
                "plaatsen": "|".join(dict.fromkeys(m[2] for m in members)),
                "gemeentecode": code,
                "gemeentenaam": name,
                "provincie": province,
                "alle_gemeentecodes": "|".join(sorted(set(codes))),
            }
        )
    return rows


def write_pc4(rows: list[dict[str, str]], target: Path) -> None:
    """Write rows in the PC4 CSV format that `PostcodeBook.load` reads."""
    target.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=PC4_COLUMNS)
    writer.writeheader()
    writer.writerows(r for r in rows if r["gemeentecode"])
    target.write_text(buffer.getvalue(), encoding="utf-8")
