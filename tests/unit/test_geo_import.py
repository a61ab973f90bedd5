"""Importing a GeoNames postal-code file into the PC4 table."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from storage.geo import PostcodeBook
from storage.geo_import import PostcodeImportError, geonames_to_pc4, read_geonames_lines, write_pc4

ROWS = [
    "NL\t7511\tEnschede\tOverijssel\tOV\tEnschede\t0153\t\t\t52.2200\t6.9000\t6",
    "NL\t7512\tEnschede\tOverijssel\tOV\tEnschede\t0153\t\t\t52.2250\t6.8800\t6",
    "NL\t7512\tGlanerbrug\tOverijssel\tOV\tEnschede\t0153\t\t\t52.2150\t6.8900\t6",
    "NL\t1011\tAmsterdam\tNoord-Holland\tNH\tAmsterdam\t0363\t\t\t52.3710\t4.9042\t6",
]


def test_zip_import_round_trips_into_the_book(tmp_path: Path) -> None:
    archive = tmp_path / "NL.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("NL.txt", "\n".join(ROWS) + "\n")
    seen: list[int] = []
    rows = geonames_to_pc4(read_geonames_lines(archive), progress=seen.append)
    assert len(seen) == 4
    target = tmp_path / "pc4.csv"
    write_pc4(rows, target)
    book = PostcodeBook.load(target)
    assert len(book) == 3
    place = book.lookup("7512 AB")
    assert (place.place, place.municipality_code) == ("Enschede", "0153")
    assert place.lat == pytest.approx((52.2250 + 52.2150) / 2)


def test_a_file_of_something_else_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "NL.txt"
    bogus.write_text("pc4,lat,lon\n1011,52.3,4.9\n")
    with pytest.raises(PostcodeImportError):
        geonames_to_pc4(read_geonames_lines(bogus))
