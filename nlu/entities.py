"""Rule-based entities in a citizen's tip: time seen, place, direction, plate, description, postcode, code.

Rules, not a model: operators need the same answer every time, it must run offline in well under a
millisecond, and each rule can be checked on a table of real-looking tips (tests/nlu/test_entities.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, NamedTuple

from nlu.dutch_time import AMSTERDAM, SeenTime, TimeMention, find_times_in, seen_time
from nlu.places import FURNITURE, PlaceList, Towns, order_places
from nlu.plates import find_plates
from nlu.types import Entity
from nlu.words import Words, first_word, fold, last_word, matches_at, words_of

MAX_TEXT: Final = 2000
EXTRACTOR: Final = "builtin_rules"

# Entity names shared with nlu.yml, domain.yml and the tip flow.
TIME_SEEN: Final = "time_seen"
PLACE: Final = "place"
DIRECTION: Final = "direction"
VEHICLE_PLATE: Final = "vehicle_plate"
DESCRIPTION: Final = "description"
POSTCODE: Final = "postcode"
ACTION_CODE: Final = "action_code"
ENTITY_NAMES: Final = (TIME_SEEN, PLACE, DIRECTION, VEHICLE_PLATE, DESCRIPTION, POSTCODE, ACTION_CODE)

_F = re.IGNORECASE


def _words(*names: str) -> str:
    return "|".join(sorted({re.escape(n) for n in names}, key=len, reverse=True))


def _firsts(*names: str) -> frozenset[str]:
    return frozenset(first_word(n) for n in names)


class _Rule(NamedTuple):
    """A pattern and the words that must be in a text for it to match there (see nlu/words.py)."""

    pattern: re.Pattern[str]
    # The folded words a match can begin with; None: where `begins` says.
    starts: frozenset[str] | None
    # A match also holds one of these folded words (None: no such condition).
    needs: frozenset[str] | None = None
    # Where in a text (with these words) a match can begin, for rules that no set of words says.
    begins: Callable[[str, Words], list[int]] | None = None

    def candidates(self, text: str, words: Words) -> list[int]:
        """The word starts where a match can begin: every match of `pattern.finditer(text)` begins at one."""
        if self.needs is not None and words.present.isdisjoint(self.needs):
            return []
        if self.starts is None:
            assert self.begins is not None
            return self.begins(text, words)
        if words.present.isdisjoint(self.starts):
            return []
        starts = self.starts
        return [start for start, word in words.at if word in starts]


# --- action codes and postcodes ----------------------------------------------------------------------

_ACTION_CODE = re.compile(r"(?<![\w-])BN[-\s]?(\d{4})(?![\w-])", _F)
_POSTCODE = re.compile(r"(?<![\w-])([1-9]\d{3})(?:\s?([A-Z]{2})|([a-z]{2}))(?![\w-])")
_NEVER_ISSUED_POSTCODE: Final = frozenset({"SA", "SD", "SS"})


@dataclass(frozen=True)
class Span:
    """A found entity before it becomes an `Entity`: where, what, and its normalised value."""

    entity: str
    start: int
    end: int
    value: str


def find_action_codes(text: str) -> list[Span]:
    """Action codes such as `bn 4821` or `BN-4821`, normalised to `BN-4821`."""
    return [Span(ACTION_CODE, m.start(), m.end(), f"BN-{m.group(1)}") for m in _ACTION_CODE.finditer(text)]


def find_postcodes(text: str) -> list[Span]:
    """Dutch postcodes (`7511 AB`, `7511ab`), normalised to `7511 AB`."""
    found = []
    for m in _POSTCODE.finditer(text):
        letters = (m.group(2) or m.group(3)).upper()
        if letters not in _NEVER_ISSUED_POSTCODE:
            found.append(Span(POSTCODE, m.start(), m.end(), f"{m.group(1)} {letters}"))
    return found


# --- direction ---------------------------------------------------------------------------------------

_STOP_WORDS: Final = (
    "en", "met", "op", "in", "bij", "om", "rond", "toen", "die", "dat", "hij", "zij", "ze", "want", "maar",
    "terwijl", "vanaf", "over", "via", "ongeveer", "uur", "gisteren", "vandaag", "net", "weg", "gegaan",
    "gelopen", "gereden", "gefietst", "gerend", "and", "with", "at", "around", "when", "he", "she", "they",
    "was", "is", "zag", "gezien", "rijden", "lopen", "fietsen", "rennen", "heen", "toe", "af", "of", "ik",
    "we", "wij", "een", "ook", "nog", "daarna", "then", "on", "to", "a", "by", "his", "her", "hun", "zijn",
)
_STOP = _words(*_STOP_WORDS)
# A short noun phrase: up to three words (road numbers and hyphenated names included), no stop words.
_NP = rf"(?:(?!(?:{_STOP})\b)[\w'’-]+(?:\s+(?!(?:{_STOP})\b)[\w'’-]+){{0,2}})"
_ARTICLE = r"(?:(?:de|het|den|'t|the)\s+)?"
_COMPASS_WORDS: Final = ("noord", "zuid", "oost", "west", "noordoost", "noordwest", "zuidoost", "zuidwest")
_COMPASS = r"(?:" + "|".join(_COMPASS_WORDS) + ")"
_MOTION_VERBS_WORDS: Final = (
    "rende", "renden", "liep", "liepen", "fietste", "fietsten", "reed", "reden", "ging", "gingen",
    "vluchtte", "vluchtten", "vertrok", "vertrokken", "sprintte", "scheurde", "scheurden", "wandelde",
    "wandelden", "racete", "crossten", "crosste", "vandoor", "ervandoor", "weg", "rent", "loopt", "rijdt",
    "fietst", "gaat", "ran", "walked", "drove", "cycled", "went", "fled", "headed", "running", "driving",
    "bus", "trein", "tram", "metro", "taxi",
)
_MOTION_VERBS = _words(*_MOTION_VERBS_WORDS)
_ROAD = re.compile(r"[AN]\d{1,3}", _F)


def _road_starts(text: str, words: Words) -> list[int]:
    return [start for start, word in words.at if word == "de" or _ROAD.fullmatch(word) is not None]


_DIRECTION_RULES: Final = (
    _Rule(
        re.compile(rf"(?<![\w-])(?:in\s+de\s+)?richting\s+(?:van\s+)?{_ARTICLE}(?P<np>{_NP})", _F),
        frozenset({"in", "richting"}),
        needs=frozenset({"richting"}),
    ),
    _Rule(
        re.compile(
            rf"(?<![\w-])(?:in\s+the\s+direction\s+of|(?:heading\s+)?towards?|heading(?:\s+to)?)\s+"
            rf"{_ARTICLE}(?P<np>{_NP})",
            _F,
        ),
        frozenset({"in", "heading", "toward", "towards"}),
        needs=frozenset({"direction", "heading", "toward", "towards"}),
    ),
    _Rule(re.compile(rf"(?<![\w-])naar\s+het\s+(?P<np>{_COMPASS}en)(?![\w-])", _F), frozenset({"naar"})),
    _Rule(
        re.compile(rf"(?<![\w-])in\s+(?P<np>{_COMPASS}elijke)\s+richting(?![\w-])", _F),
        frozenset({"in"}),
        needs=frozenset({"richting"}),
    ),
    _Rule(
        re.compile(
            rf"(?<![\w-])(?P<np>{_COMPASS}waarts|(?:north|south|east|west)(?:bound|wards?))(?![\w-])", _F
        ),
        frozenset(
            [f"{c}waarts" for c in _COMPASS_WORDS]
            + [f"{c}{s}" for c in ("north", "south", "east", "west") for s in ("bound", "ward", "wards")]
        ),
    ),
    _Rule(
        re.compile(r"(?<![\w-])(?:de\s+)?(?P<np>[AN]\d{1,3})\s+op(?![\w-])", _F),
        None,
        needs=frozenset({"op"}),
        begins=_road_starts,
    ),
    _Rule(
        re.compile(
            rf"(?<![\w-])(?:{_MOTION_VERBS})(?:\s+[\w'-]+){{0,3}}?\s+(?:naar|to|into)\s+{_ARTICLE}(?P<np>{_NP})",
            _F,
        ),
        _firsts(*_MOTION_VERBS_WORDS),
        needs=frozenset({"naar", "to", "into"}),
    ),
)


def find_directions(text: str) -> list[Span]:
    """Where someone went: "richting centrum", "naar het noorden", "de A12 op", "rende naar de Jumbo"."""
    return _directions(text, words_of(text))


def _directions(text: str, words: Words) -> list[Span]:
    return _apply(DIRECTION, _DIRECTION_RULES, text, words)


# --- place -------------------------------------------------------------------------------------------

_STREET_SUFFIXES = (
    "straat", "weg", "laan", "plein", "singel", "gracht", "kade", "dijk", "pad", "steeg", "hof", "markt",
    "dreef", "baan", "wal", "boulevard", "allee", "park", "veld", "brug", "haven", "poort", "dam",
    "plantsoen", "erf", "hoven", "burg", "straatje",
)
_NOT_STREETS: Final = frozenset({"onderweg", "halfweg", "omweg", "loopbaan", "weg", "straat"})
_STREET = rf"\w{{2,}}(?:{_words(*_STREET_SUFFIXES)})(?:\s+\d{{1,4}}(?:\s?[a-zA-Z](?![\w]))?)?"
# "Burgemeester van Roijensingel", "Oude Markt": capitalised words before the street word.
_NAMED_STREET = rf"(?:[A-Z][\w'.]*\s+(?:(?:[A-Z][\w'.]*|van|de|der|den|'t)\s+){{0,2}})?[A-Z]{_STREET}"
_LANDMARKS_WORDS: Final = (
    "centraal station", "station", "treinstation", "metrostation", "busstation", "jumbo", "albert heijn",
    "ah", "lidl", "aldi", "plus", "coop", "spar", "dirk", "vomar", "hoogvliet", "hema", "kruidvat", "etos",
    "action",
    "mcdonalds", "mcdonald's", "mac", "burger king", "kfc", "school", "basisschool", "middelbare school",
    "kerk", "moskee", "bieb", "bibliotheek", "park", "speeltuin", "winkelcentrum", "markt", "plein",
    "ziekenhuis", "tankstation", "benzinepomp", "pomp", "shell", "bp", "esso", "tinq", "snackbar",
    "cafetaria", "friettent", "bushalte", "halte", "tramhalte", "brug", "rotonde", "kruispunt",
    "stoplichten", "stoplicht", "viaduct", "tunnel", "parkeerplaats", "parkeergarage", "sporthal",
    "sportpark",
    "voetbalveld", "gemeentehuis", "stadhuis", "politiebureau", "begraafplaats", "kerkhof", "bos", "vijver",
    "haven", "strand", "centrum", "snelweg", "flat", "flats", "supermarkt", "apotheek", "huisartsenpost",
    "bakker", "slager", "kapper", "pizzeria", "hotel", "camping", "zwembad", "skatebaan", "fietsenstalling",
    "pinautomaat", "geldautomaat", "bank", "postkantoor", "kinderboerderij", "gamma", "praxis", "karwei",
    "ikea", "blokker", "primark", "mediamarkt", "bouwmarkt", "dierenwinkel", "uitgaansgebied", "kroeg",
    "bankje", "café", "cafe", "nachtwinkel", "sportschool", "universiteit", "hogeschool", "bioscoop",
    "theater", "playground", "train station", "supermarket", "church", "mosque", "library", "hospital",
    "gas station", "petrol station", "bus stop", "bridge", "roundabout", "crossing", "car park",
    "town hall", "police station", "cemetery", "woods", "forest", "pond", "harbour", "beach", "city centre",
    "shopping centre", "mall", "pharmacy", "bakery", "garage", "parking lot", *FURNITURE,
)
_LANDMARKS = _words(*_LANDMARKS_WORDS)
_PREPOSITIONS_WORDS: Final = (
    "bij", "aan", "op", "in", "voor", "achter", "naast", "tegenover", "nabij", "vlakbij", "vlak bij", "langs",
    "ter hoogte van", "in de buurt van", "van", "vanaf", "rond", "rondom", "onder", "uit", "door", "over",
    "hoek",
    "op de hoek van", "thv", "at", "near", "outside", "behind", "by", "next to", "opposite", "on", "in",
    "in front of", "around", "from",
)
_PREPOSITIONS = _words(*_PREPOSITIONS_WORDS)


def _street_starts(text: str, words: Words) -> list[int]:
    # The street word is a whole word: nothing of [\w-] follows its suffix.
    return [start for start, word in words.at if word.endswith(_STREET_SUFFIXES)]


def _named_street_starts(text: str, words: Words) -> list[int]:
    if not any(word.endswith(_STREET_SUFFIXES) for word in words.present):
        return []
    # Matched case-sensitively: a named street begins with a capital A-Z.
    return [start for start, _ in words.at if "A" <= text[start] <= "Z"]


_PLACE_RULES: Final = (
    _Rule(
        re.compile(rf"(?<![\w-])(?P<np>{_NAMED_STREET})(?![\w-])"),
        None,
        begins=_named_street_starts,
    ),
    _Rule(re.compile(rf"(?<![\w-])(?P<np>{_STREET})(?![\w-])", _F), None, begins=_street_starts),
    _Rule(
        re.compile(
            rf"(?<![\w-])(?:{_PREPOSITIONS})\s+(?:(?:de|het|den|'t|the|a|an|een)\s+)?"
            rf"(?P<np>(?:(?:[A-Z][\w'-]*)\s+)?(?:{_LANDMARKS}))(?![\w-])",
            _F,
        ),
        _firsts(*_PREPOSITIONS_WORDS),
        needs=frozenset(last_word(n) for n in _LANDMARKS_WORDS),
    ),
    _Rule(
        re.compile(r"(?<![\w-])(?:op|on|aan|langs)\s+(?:de\s+|the\s+)?(?P<np>[AN]\d{1,3})(?![\w-])", _F),
        frozenset({"op", "on", "aan", "langs"}),
    ),
    _Rule(
        re.compile(
            r"(?<![\w-])(?:in|te|uit|bij|in de buurt van|near)\s+"
            r"(?P<np>[A-Z][a-z]+(?:[- ][A-Z][a-z]+)?)(?![\w-])"
        ),
        frozenset({"in", "te", "uit", "bij", "near"}),
    ),
)
_NOT_PLACES: Final = frozenset(
    {
        "ik", "het", "de", "een", "hij", "zij", "ze", "we", "wij", "jullie", "i", "the", "he", "she", "they",
        "maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag", "burgernet",
        "januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
        "november", "december", "nederland", "ok", "oke", "ja", "nee", "hallo", "hoi", "help", "stop",
    }
)


def find_places(text: str, towns: Towns | None = None) -> list[Span]:
    """Where something was seen: streets ("Kerkstraat 12"), landmarks ("bij de Jumbo"), towns, roads."""
    return _places(text, words_of(text), towns)


# A town's name in lower case counts after one of these ("bij station enschede", "in hengelo"), unless it
# is also a common word ("bij een boom", "bij hem": Een and Hem are villages).
_TOWN_CUES: Final = frozenset({"in", "te", "uit", "bij", "station", "centrum", "near", "at", "nabij"})
_TOWNS_ALSO_WORDS: Final = frozenset(
    ("een", "hem", "heel", "ie", "best", "echt", "leek", "neer", "made", "lies", "hoek", "wier", "well")
    + ("hall", "baard", "broek", "oranje", "blokker", "loon", "boer", "beek", "heide", "waal", "grave")
)
_SENTENCE_END: Final = re.compile(r"(?:^|[.!?]\s*)$")


def _places(text: str, words: Words, towns: Towns | None = None) -> list[Span]:
    spans = _apply(PLACE, _PLACE_RULES, text, words)
    spans = [s for s in spans if s.value.lower() not in _NOT_PLACES and s.value.lower() not in _NOT_STREETS]
    if towns is None:
        return spans
    before = {start: words.at[i - 1][1] for i, (start, _) in enumerate(words.at) if i}
    for start, end, name in towns.find(text, words):
        inside = [s for s in spans if start <= s.start and s.end <= end]
        if inside and len(inside) == sum(not (end <= s.start or start >= s.end) for s in spans):
            spans = [s for s in spans if s not in inside]  # "in Bergen" read by a rule is "Bergen op Zoom"
        if not all(end <= s.start or start >= s.end for s in spans):
            continue
        capital = text[start].isupper() and _SENTENCE_END.search(text[:start].rstrip(" ")) is None
        cued = before.get(start) in _TOWN_CUES or any(s.end <= start <= s.end + 2 for s in spans)
        if capital or cued and fold(text[start:end]) not in _TOWNS_ALSO_WORDS:
            spans.append(Span(PLACE, start, end, name))  # as the table spells it, for the geocoder
    spans.sort(key=lambda s: s.start)
    return spans


# --- description -------------------------------------------------------------------------------------

_COLOURS_WORDS: Final = (
    "rood", "rode", "roodachtig", "donkerrood", "donkerrode", "bordeaux", "blauw", "blauwe", "donkerblauw",
    "donkerblauwe", "lichtblauw", "lichtblauwe", "zwart", "zwarte", "wit", "witte", "grijs", "grijze",
    "donkergrijs", "donkergrijze", "lichtgrijs", "lichtgrijze", "antraciet", "antracietkleurige", "groen",
    "groene", "donkergroen", "donkergroene", "legergroen", "legergroene", "geel", "gele", "oranje", "paars",
    "paarse", "roze", "bruin", "bruine", "beige", "zilver", "zilveren", "zilverkleurig", "zilverkleurige",
    "goud", "gouden", "camouflage", "donker", "donkere", "licht", "lichte", "felgekleurde", "gestreepte",
    "geruite", "red", "blue", "black", "white", "grey", "gray", "green", "yellow", "orange", "purple",
    "pink", "brown", "silver", "dark", "light", "navy",
)
_COLOURS = _words(*_COLOURS_WORDS)
_ADJECTIVES_WORDS: Final = (
    "leren", "lange", "lang", "korte", "kort", "grote", "groot", "kleine", "klein", "oude", "oud", "nieuwe",
    "sportieve", "dikke", "dunne", "slanke", "getinte", "gespierde", "kale", "blonde", "blond", "krullend",
    "lelijke", "opvallende", "gehavende", "beschadigde", "gedeukte", "elektrische", "tall", "short", "big",
    "small", "old", "leather", "fat", "thin", "bald", "blond", "young", "jonge",
)
_ADJECTIVES = _words(*_ADJECTIVES_WORDS)
_CLOTHING_WORDS: Final = (
    "jas", "jasje", "jack", "winterjas", "regenjas", "capuchon", "capuchontrui", "hoodie", "trui", "sweater",
    "vest", "bodywarmer", "broek", "spijkerbroek", "jeans", "joggingbroek", "trainingsbroek", "trainingspak",
    "pak", "korte broek", "short", "pet", "petje", "muts", "mutsje", "bivakmuts", "helm", "sjaal",
    "sneakers", "schoenen", "laarzen", "gympen", "rugzak", "tas", "schoudertas", "sporttas", "shirt",
    "t-shirt", "overhemd", "blouse", "jurk", "rok", "hesje", "handschoenen", "bril", "zonnebril",
    "mondkapje", "jacket", "coat", "hood", "hoodie", "trousers", "pants", "cap", "hat", "beanie",
    "backpack", "bag", "shoes", "dress", "skirt", "gloves", "glasses", "mask", "scarf",
    "baard", "snor", "beard", "tattoo", "staartje", "paardenstaart",
)
_CLOTHING = _words(*_CLOTHING_WORDS)
# "haar" is also "her": only with a colour or an adjective ("blond haar") is it hair.
_HAIR_WORDS: Final = ("haar", "hair", "krullen", "curls")
_HAIR = _words(*_HAIR_WORDS)
# English "van" is Dutch "of": a van only with a colour or an adjective ("white van").
_NEEDS_MODIFIER = rf"{_HAIR}|van"
_VEHICLES_WORDS: Final = (
    "auto", "wagen", "personenauto", "busje", "bus", "bestelbus", "bestelbusje", "bestelauto", "bestelwagen",
    "scooter", "scootertje", "brommer", "snorfiets", "fatbike", "fiets", "e-bike", "motor", "motorfiets",
    "quad", "vrachtwagen", "truck", "taxi", "stationwagen", "suv", "cabrio", "car", "bike",
    "motorbike", "bicycle", "moped", "rollator", "koevoet", "balaclava", "balaclavas", "bivakmutsen",
)
_VEHICLES = _words(*_VEHICLES_WORDS)
_BRANDS_WORDS: Final = (
    "bmw", "audi", "mercedes", "volkswagen", "vw", "golf", "polo", "opel", "astra", "corsa", "ford",
    "fiesta", "focus", "toyota", "yaris", "peugeot", "renault", "clio", "citroen", "citroën", "kia",
    "hyundai", "skoda", "seat", "volvo", "tesla", "fiat", "nissan", "mazda", "mini", "porsche", "vespa",
    "piaggio", "transit", "sprinter", "caddy",
)
_BRANDS = _words(*_BRANDS_WORDS)
_PERSONS_WORDS: Final = (
    "man", "vrouw", "jongen", "meisje", "jongens", "mannen", "vrouwen", "kind", "guy", "woman", "boy", "girl",
    "men", "kerel", "gast", "persoon",
)
_PERSONS = _words(*_PERSONS_WORDS)
_MODIFIER = rf"(?:{_COLOURS}|{_ADJECTIVES})"
_THINGS: Final = _firsts(*_CLOTHING_WORDS, *_VEHICLES_WORDS)
_DESCRIPTION_RULES: Final = (
    _Rule(
        re.compile(
            rf"(?<![\w-])(?P<np>(?:{_MODIFIER}\s+(?:en\s+)?){{1,3}}(?:(?:{_BRANDS})\s+)?"
            rf"(?:{_CLOTHING}|{_VEHICLES}|{_BRANDS}|{_PERSONS}|{_NEEDS_MODIFIER}))(?![\w-])",
            _F,
        ),
        _firsts(*_COLOURS_WORDS, *_ADJECTIVES_WORDS),
        needs=_THINGS | _firsts(*_BRANDS_WORDS, *_PERSONS_WORDS, *_HAIR_WORDS, "van"),
    ),
    _Rule(
        re.compile(rf"(?<![\w-])(?P<np>(?:{_BRANDS})(?:\s+(?:{_BRANDS}|{_VEHICLES}))?)(?![\w-])", _F),
        _firsts(*_BRANDS_WORDS),
    ),
    _Rule(re.compile(rf"(?<![\w-])(?P<np>{_CLOTHING}|{_VEHICLES})(?![\w-])", _F), _THINGS),
    _Rule(
        re.compile(rf"(?<![\w-])(?:in\s+het\s+)?(?P<np>(?:{_COLOURS})\s+gekleed)(?![\w-])", _F),
        _firsts("in", *_COLOURS_WORDS),
        needs=frozenset({"gekleed"}),
    ),
)


def find_descriptions(text: str) -> list[Span]:
    """Clothing, colours, vehicles and looks: "rode jas", "zwarte BMW", "witte bestelbus", "blond haar"."""
    return _descriptions(text, words_of(text))


def _descriptions(text: str, words: Words) -> list[Span]:
    spans = _apply(DESCRIPTION, _DESCRIPTION_RULES, text, words)
    return [Span(s.entity, s.start, s.end, s.value.lower()) for s in spans]


# --- putting it together -----------------------------------------------------------------------------


_SPACES = re.compile(r"\s+")


def _apply(entity: str, rules: Iterable[_Rule], text: str, words: Words) -> list[Span]:
    """Each rule's `np` group as a span; earlier rules win where spans overlap."""
    spans: list[Span] = []
    for rule in rules:
        for m in matches_at(rule.pattern, text, rule.candidates(text, words)):
            start, end = m.span("np")
            value = _SPACES.sub(" ", m.group("np")).strip(" ,")
            if value and all(end <= s.start or start >= s.end for s in spans):
                spans.append(Span(entity, start, end, value))
    return spans


@dataclass(frozen=True)
class TipReading:
    """A tip's entities, and the values a control room needs: when it was seen, and every place named."""

    spans: tuple[Span, ...]
    seen: SeenTime | None
    places: PlaceList


def read_tip(text: str, received_at: datetime, tz: str = AMSTERDAM, towns: Towns | None = None) -> TipReading:
    """The spans of `find_spans`, the time the tip means (`seen_time`) and its places, in order."""
    text = text[:MAX_TEXT]
    words = words_of(text)
    times = find_times_in(text, received_at, tz, words)
    spans = _spans(text, words, times, towns)
    # A time phrase a code, plate or postcode took ("12-11") is not a time.
    kept_times = [m for m in times if _time_kept(m, spans)]
    places = order_places(((s.start, s.value) for s in spans if s.entity == PLACE), towns)
    return TipReading(tuple(spans), seen_time(kept_times, received_at, tz), places)


def _plate_spans(text: str) -> list[Span]:
    return [Span(VEHICLE_PLATE, p.start, p.end, p.value) for p in find_plates(text)]


def _time_kept(mention: TimeMention, spans: list[Span]) -> bool:
    if any(s.entity == TIME_SEEN and s.start <= mention.start < s.end for s in spans):
        return True
    return all(mention.end <= s.start or mention.start >= s.end for s in spans)


def find_spans(
    text: str, received_at: datetime, tz: str = AMSTERDAM, towns: Towns | None = None
) -> list[Span]:
    """Every entity in `text`, without overlaps (codes, plates and postcodes first), in text order."""
    text = text[:MAX_TEXT]
    words = words_of(text)
    return _spans(text, words, find_times_in(text, received_at, tz, words), towns)


_TRAILING: Final = " \t\r\n,;"


def _before_times(spans: list[Span], text: str, times: list[TimeMention]) -> list[Span]:
    """Spans cut where a time phrase begins inside them: "richting station nu net 5 min geleden" heads
    for "station", and the time stays a time."""
    kept: list[Span] = []
    for span in spans:
        cut = min((m.start for m in times if span.start < m.start < span.end), default=None)
        if cut is None:
            kept.append(span)
            continue
        end = len(text[:cut].rstrip(_TRAILING))
        value = span.value[: len(span.value) - (span.end - end)].rstrip(_TRAILING)
        if end > span.start and value:
            kept.append(Span(span.entity, span.start, end, value))
    return kept


def _spans(text: str, words: Words, times: list[TimeMention], towns: Towns | None) -> list[Span]:
    time_spans = [Span(TIME_SEEN, m.start, m.end, m.value.isoformat()) for m in times[:1]]
    finders: list[Callable[[str], list[Span]]] = [
        find_action_codes,
        find_postcodes,  # before plates: "7522NB" is a postcode; its sidecode-2 reading is from the 1950s
        _plate_spans,
        lambda t: time_spans,
        lambda t: _before_times(_directions(t, words), t, times),
        lambda t: _before_times(_places(t, words, towns), t, times),
        lambda t: _before_times(_descriptions(t, words), t, times),
    ]
    kept: list[Span] = []
    for finder in finders:
        for span in finder(text):
            if all(span.end <= k.start or span.start >= k.end for k in kept):
                kept.append(span)
    kept.sort(key=lambda s: (s.start, s.end))
    return kept


def extract_tip_entities(text: str, received_at: datetime, tz: str = AMSTERDAM) -> tuple[Entity, ...]:
    """The entities of a tip as `Entity` values; `time_seen` is an ISO datetime in `tz`, at most one."""
    return tuple(
        Entity(entity=s.entity, value=s.value, start=s.start, end=s.end, extractor=EXTRACTOR)
        for s in find_spans(text, received_at, tz)
    )
