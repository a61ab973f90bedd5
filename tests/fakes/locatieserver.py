"""A local fake of PDOK Locatieserver v3.1 (`/suggest`, `/free`) on 127.0.0.1, recording every request.

It answers as the documented API does (the OpenAPI spec and the wiki of PDOK/locatieserver): a Solr
envelope `{"response": {"numFound", "start", "maxScore", "numFoundExact", "docs": [...]}}`, on `/suggest`
with `highlighting` and `spellcheck` beside it; `fl` chooses the fields (default `id,weergavenaam,type,score`,
so a client that wants coordinates must ask for `centroide_ll`); `fq` filters on type (default
`type:(gemeente OR woonplaats OR weg OR postcode OR adres)`); `lat`/`lon` sort by distance; `rows` limits;
a parameter outside the spec is refused with 400, as v3.1 does.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

DEFAULT_FL = "id,weergavenaam,type,score"
BOOST = {"provincie": 1.5, "gemeente": 1.5, "woonplaats": 1.5, "weg": 1.5, "postcode": 0.5, "adres": 1.0}
DEFAULT_TYPES: tuple[str, ...] = ("gemeente", "woonplaats", "weg", "postcode", "adres")
ALLOWED = {
    "suggest": {"q", "fl", "sort", "qf", "bq", "rows", "start", "wt", "indent", "lat", "lon", "fq"},
    "free": {"q", "fl", "sort", "df", "rows", "start", "wt", "indent", "lat", "lon", "fq"},
}


def _doc(
    ident: str, kind: str, name: str, lon: float, lat: float, *, municipality: str, extra: str = ""
) -> dict[str, Any]:
    return {
        "id": ident,
        "type": kind,
        "weergavenaam": name,
        "centroide_ll": f"POINT({lon} {lat})",
        "centroide_rd": "POINT(258000 471000)",
        "gemeentenaam": municipality,
        "gemeentecode": "0153" if municipality == "Enschede" else "0164",
        "provincienaam": "Overijssel",
        "provinciecode": "PV23",
        "provincieafkorting": "OV",
        "bron": "BAG" if kind in ("adres", "postcode", "woonplaats", "weg") else "CBS",
        "_search": f"{name} {extra}",
    }


# A handful of places in Enschede (and Hengelo, just outside a small Enschede circle), the documents
# shaped as Locatieserver returns them.
PLACES: tuple[dict[str, Any], ...] = (
    _doc(
        "wpl-2c5e0a3e5f8b4a1c8e0f",
        "woonplaats",
        "Enschede, Enschede, Overijssel",
        6.89569,
        52.22169,
        municipality="Enschede",
    ),
    _doc(
        "gem-8a1f6a0f7c1d4d0e9b3c",
        "gemeente",
        "Gemeente Enschede",
        6.87624,
        52.21879,
        municipality="Enschede",
    ),
    _doc(
        "weg-0f8c3e1b2a6d4e5f9a1b",
        "weg",
        "Kalanderstraat, Enschede",
        6.89412,
        52.21975,
        municipality="Enschede",
    ),
    _doc(
        "weg-5a7c9e1d3b2f4a6c8e0d", "weg", "Oude Markt, Enschede", 6.89640, 52.21960, municipality="Enschede"
    ),
    _doc(
        "weg-3b1d5f7a9c2e4b6d8f0a",
        "weg",
        "Stationsplein, Enschede",
        6.89005,
        52.22222,
        municipality="Enschede",
        extra="station",
    ),
    _doc(
        "adr-7e9a1c3b5d2f4e6a8c0b",
        "adres",
        "Stationsplein 1, 7511JD Enschede",
        6.89036,
        52.22262,
        municipality="Enschede",
        extra="station 7511JD",
    ),
    _doc(
        "pcd-1a3c5e7b9d2f4a6c8e0f",
        "postcode",
        "Kalanderstraat, 7511AB Enschede",
        6.89418,
        52.21990,
        municipality="Enschede",
        extra="7511AB",
    ),
    _doc(
        "wpl-9d7b5a3c1e2f4d6b8a0c",
        "woonplaats",
        "Hengelo, Hengelo, Overijssel",
        6.79315,
        52.26563,
        municipality="Hengelo",
    ),
)


def _tokens(text: str) -> list[str]:
    # A postcode written with a space is one token for Locatieserver ("7511 AB" finds 7511AB).
    text = re.sub(r"\b([1-9]\d{3})\s+([a-zA-Z]{2})\b", r"\1\2", text)
    return re.findall(r"[\w]+", text.casefold())


def _distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


def _point(doc: dict[str, Any]) -> tuple[float, float]:
    lon, lat = doc["centroide_ll"][6:-1].split()
    return float(lat), float(lon)


@dataclass(frozen=True)
class Recorded:
    """One request the fake received."""

    endpoint: str
    params: dict[str, str]
    status: int


class FakeLocatieserver:
    """Locatieserver's `/suggest` and `/free` over HTTP on a free loopback port."""

    def __init__(self, places: tuple[dict[str, Any], ...] = PLACES) -> None:
        self.places = places
        self.requests: list[Recorded] = []
        self.delay_s = 0.0
        """Wait this long before answering (a slow server, for the client's timeout)."""
        self.fail_status: int | None = None
        """Answer every request with this HTTP status (a failing server)."""
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Serve in a thread; returns the base URL (`http://127.0.0.1:<port>/bzk/locatieserver/search/v3_1`)."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-locatieserver",
            daemon=True,
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeLocatieserver:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """Where the API lives, as `GEOCODER_URL` takes it."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/bzk/locatieserver/search/v3_1"

    def answer(self, endpoint: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for a request (also usable without HTTP)."""
        if endpoint not in ALLOWED:
            return HTTPStatus.NOT_FOUND, {"message": "Not found"}
        unknown = set(params) - ALLOWED[endpoint]
        if unknown:
            return HTTPStatus.BAD_REQUEST, {"message": f"unknown query parameter(s): {sorted(unknown)}"}
        if endpoint == "suggest" and not params.get("q"):
            return HTTPStatus.BAD_REQUEST, {"message": "q is required"}
        words = _tokens(params.get("q", ""))
        types = DEFAULT_TYPES
        fq = params.get("fq")
        if fq is not None and fq != "*":
            match = re.fullmatch(r"type:\((.+)\)|type:(\w+)", fq.strip())
            if match is None:
                return HTTPStatus.BAD_REQUEST, {"message": "unsupported fq in this fake"}
            types = tuple(t.strip() for t in (match.group(1) or match.group(2)).split(" OR "))
        hits = []
        for doc in self.places:
            if doc["type"] not in types:
                continue
            have = _tokens(doc["_search"])
            matched = sum(1 for w in words if any(h.startswith(w) for h in have))
            if words and matched < len(words):
                continue
            exact = sum(1 for w in words if w in have)
            # Locatieserver's documented defaults: qf boosts an exact match, bq weighs the types.
            whole = _tokens(doc["weergavenaam"].split(",")[0]) == words
            score = round((5.0 + 2.0 * exact + (3.0 if whole else 0.0)) * BOOST.get(doc["type"], 1.0), 6)
            hits.append((score, doc))
        if "lat" in params and "lon" in params:
            lat, lon = float(params["lat"]), float(params["lon"])
            hits.sort(key=lambda pair: _distance_m(lat, lon, *_point(pair[1])))
        else:
            hits.sort(key=lambda pair: (-pair[0], pair[1]["weergavenaam"]))
        start, rows = int(params.get("start", "0")), int(params.get("rows", "10"))
        page = hits[start : start + rows]
        fields = [f.strip() for f in params.get("fl", DEFAULT_FL).split(",") if f.strip()]
        docs = [
            {f: (score if f == "score" else doc[f]) for f in fields if f == "score" or f in doc}
            for score, doc in page
        ]
        body: dict[str, Any] = {
            "response": {
                "numFound": len(hits),
                "start": start,
                "maxScore": max((s for s, _ in hits), default=0.0),
                "numFoundExact": True,
                "docs": docs,
            }
        }
        if endpoint == "suggest":
            body["highlighting"] = {
                doc["id"]: {
                    "suggest": [
                        doc["weergavenaam"].replace(
                            doc["weergavenaam"].split(",")[0],
                            f"<b>{doc['weergavenaam'].split(',')[0]}</b>",
                            1,
                        )
                    ]
                }
                for _, doc in page
            }
            body["spellcheck"] = {"suggestions": [], "collations": []}
        return HTTPStatus.OK, body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                endpoint = parts.path.rstrip("/").rsplit("/", 1)[-1]
                params = dict(parse_qsl(parts.query, keep_blank_values=True))
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                if fake.fail_status is not None:
                    status, body = fake.fail_status, {"message": "fake failure"}
                else:
                    status, body = fake.answer(endpoint, params)
                with fake._lock:
                    fake.requests.append(Recorded(endpoint, params, int(status)))
                data = json.dumps(body).encode()
                try:
                    self.send_response(int(status))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): nothing to answer any more

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        return Handler
