"""Durations and sizes as people write them in config files.

``parse_duration`` returns float seconds and ``parse_size`` int bytes, the units
the model (``lbproxy.config.model``) uses everywhere. Both raise ``UnitError``
(a ``ValueError``) whose ``reason`` leaves the value out, so the loader can
phrase it as ``key: reason, got "value" (line N)``.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

__all__ = ["UnitError", "parse_duration", "parse_size"]


class UnitError(ValueError):
    def __init__(self, reason: str, value: object) -> None:
        self.reason = reason
        self.value = value
        super().__init__(f"{reason}, got {value!r}")


_DURATION_UNITS: dict[str, Decimal] = {
    "us": Decimal("0.000001"),
    "µs": Decimal("0.000001"),
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
    "d": Decimal(86400),
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PART = re.compile(rf"({_NUMBER})(us|µs|ms|s|m|h|d)")
_BARE_NUMBER = re.compile(_NUMBER)
_DURATION_REASON = "not a duration (like 250ms, 2s, 1m, 1h30m)"


def parse_duration(value: str | float) -> float:
    """Seconds in ``value``: "250ms", "2s", "1m", "1h30m", "1.5s", or a bare number of seconds.

    Units are lower case only, so "1M" (month? minute?) is refused rather than guessed.
    """
    if isinstance(value, bool):  # bool is an int subclass; True seconds is a mistake
        raise UnitError(_DURATION_REASON, value)
    if isinstance(value, int | float):
        return _finite_non_negative(float(value), value)
    if not isinstance(value, str):
        raise UnitError(_DURATION_REASON, value)
    text = value.strip()
    if _BARE_NUMBER.fullmatch(text):
        return float(Decimal(text))
    if text.startswith("-"):
        raise UnitError("a duration cannot be negative", value)
    total = Decimal(0)
    position = 0
    for part in _DURATION_PART.finditer(text):
        if part.start() != position:
            break
        total += Decimal(part.group(1)) * _DURATION_UNITS[part.group(2)]
        position = part.end()
    if position == 0 or position != len(text):
        raise UnitError(_DURATION_REASON, value)
    return float(total)


def _finite_non_negative(seconds: float, original: object) -> float:
    if not math.isfinite(seconds):
        raise UnitError(_DURATION_REASON, original)
    if seconds < 0:
        raise UnitError("a duration cannot be negative", original)
    return seconds


# Decimal units (k, MB) are SI; KiB/MiB/GiB (and the Kubernetes-style Ki/Mi/Gi) are binary.
_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_SIZE = re.compile(rf"({_NUMBER})\s*([A-Za-z]*)")
_SIZE_REASON = "not a size (like 512, 16KiB, 10MiB, 1GB)"


def parse_size(value: str | int) -> int:
    """Bytes in ``value``: an int, "512", "16KiB", "10MiB", "1.5MB", "16 KB".

    A fraction is allowed only when it comes out as whole bytes ("1.5KB" is 1500,
    "0.3KiB" is refused) so nothing is silently rounded.
    """
    if isinstance(value, bool):
        raise UnitError(_SIZE_REASON, value)
    if isinstance(value, int):
        if value < 0:
            raise UnitError("a size cannot be negative", value)
        return value
    if not isinstance(value, str):
        raise UnitError(_SIZE_REASON, value)
    text = value.strip()
    if text.startswith("-"):
        raise UnitError("a size cannot be negative", value)
    match = _SIZE.fullmatch(text)
    if match is None:
        raise UnitError(_SIZE_REASON, value)
    multiplier = _SIZE_UNITS.get(match.group(2).lower())
    if multiplier is None:
        raise UnitError(_SIZE_REASON, value)
    size = Decimal(match.group(1)) * multiplier
    if size != size.to_integral_value():
        raise UnitError("not a whole number of bytes", value)
    return int(size)
