"""Importing a GeoNames postal-code file into the PC4 table."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from storage.geo import SHIPPED_POSTCODE_DATA, PostcodeBook
from storage.geo_import import (
    PostcodeImportError,
    geonames_to_pc4,
    read_geonames_lines,
    read_municipalities,
    write_pc4,
)

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


def test_the_shipped_cbs_table_names_every_municipality_of_the_shipped_postcodes() -> None:
    municipalities = read_municipalities()
    assert len(municipalities) == 342
    book = PostcodeBook.load(SHIPPED_POSTCODE_DATA)
    assert book.municipalities() == {code: m.name for code, m in municipalities.items()}


def test_import_takes_the_official_cbs_names() -> None:
    lines = [
        "NL\t2511\tDen Haag\tSouth Holland\tZH\tThe Hague\t0518\t\t\t52.0800\t4.3100\t6",
        *ROWS,
    ]
    rows = {r["pc4"]: r for r in geonames_to_pc4(lines, municipalities=read_municipalities())}
    assert (rows["2511"]["gemeentenaam"], rows["2511"]["provincie"]) == ("'s-Gravenhage", "Zuid-Holland")
    assert rows["7511"]["gemeentenaam"] == "Enschede"
    assert rows["2511"]["plaatsen"] == "Den Haag"
