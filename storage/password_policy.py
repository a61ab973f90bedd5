"""What makes an operator's password acceptable: length, enough different characters, not a common one.

The check follows NIST SP 800-63B (5.1.1.2): a minimum length and a block list of passwords known from
breaches, no composition rules. The list (`data/common_passwords.txt`) ships with the code, so the check
needs no network; a password is refused when it, or its letters without a run of digits or symbols at
either end ("Password2024!"), is on the list, compared without case.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

MIN_LENGTH = 12
MAX_LENGTH = 512
MIN_DISTINCT = 5
COMMON = Path(__file__).parent / "data" / "common_passwords.txt"
_ENDS = re.compile(r"^[\d\W_]+|[\d\W_]+$")


class WeakPassword(ValueError):
    """A password the policy refuses; the message says why (never the password itself)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, in lower case."""
    lines = COMMON.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def check_password(password: str, *, username: str = "") -> None:
    """Refuse a short, repetitive or common password, or one mostly the username. Raises WeakPassword."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword("too_short", f"password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword("too_long", f"password must have at most {MAX_LENGTH} characters")
    if len(set(password.lower())) < MIN_DISTINCT:
        raise WeakPassword("repetitive", f"password needs at least {MIN_DISTINCT} different characters")
    lowered = password.lower()
    # The username may appear, but what is left without it must be long enough on its own.
    if username and len(lowered.replace(username.lower(), "")) < MIN_LENGTH:
        raise WeakPassword("username", "password must not be mostly the username")
    listed = common_passwords()
    core = _ENDS.sub("", lowered)
    if lowered in listed or (core and core in listed) or _sequence(lowered):
        raise WeakPassword("common", "password is too common (on the list of common passwords)")


def _sequence(text: str) -> bool:
    # "1234567890123", "abcdefghijkl", "zyxwvu…": a run along the digits or the alphabet is no secret.
    steps = {_step(a, b) for a, b in zip(text, text[1:], strict=False)}
    return steps <= {1} or steps <= {-1}


def _step(a: str, b: str) -> int:
    if a.isdigit() and b.isdigit():
        return {1: 1, 9: -1}.get((int(b) - int(a)) % 10, 0)  # 9 → 0 continues the run
    return ord(b) - ord(a)
