from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbproxy.config import UnitError, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("2s", 2.0),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("2m30s", 150.0),
        ("1h0m1s", 3601.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("100us", 0.0001),
        ("100µs", 0.0001),
        ("1d", 86400.0),
        ("0s", 0.0),
        ("30", 30.0),
        ("0.5", 0.5),
        (" 2s ", 2.0),
        (30, 30.0),
        (1.5, 1.5),
        (0, 0.0),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", "abc", "s", "2 s", "1h 30m", "1M", "2S", "2ss", "ms5", "1.2.3s", "1h-30m", "5 sec"],
)
def test_parse_duration_refuses_malformed(text: str) -> None:
    with pytest.raises(UnitError) as info:
        parse_duration(text)
    assert info.value.reason == "not a duration (like 250ms, 2s, 1m, 1h30m)"
    assert info.value.value == text


@pytest.mark.parametrize("value", ["-1s", "-5", -1, -0.5])
def test_parse_duration_refuses_negative(value: str | float) -> None:
    with pytest.raises(UnitError) as info:
        parse_duration(value)
    assert info.value.reason == "a duration cannot be negative"


@pytest.mark.parametrize("value", [True, False, math.inf, math.nan, None, [1]])
def test_parse_duration_refuses_non_durations(value: object) -> None:
    with pytest.raises(UnitError):
        parse_duration(value)  # type: ignore[arg-type]


def test_unit_error_is_a_value_error_naming_the_value() -> None:
    with pytest.raises(ValueError, match=r"not a duration .*, got '5 sec'"):
        parse_duration("5 sec")


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["ms", "s", "m", "h"]))
def test_parse_duration_scales_by_unit(count: int, unit: str) -> None:
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    assert parse_duration(f"{count}{unit}") == pytest.approx(count * factor)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("16KiB", 16 * 1024),
        ("10MiB", 10 * 1024**2),
        ("1GiB", 1024**3),
        ("1TiB", 1024**4),
        ("16Ki", 16 * 1024),
        ("16kib", 16 * 1024),
        ("512", 512),
        ("512B", 512),
        ("0", 0),
        ("16KB", 16_000),
        ("16kB", 16_000),
        ("16k", 16_000),
        ("16K", 16_000),
        ("1M", 1_000_000),
        ("1MB", 1_000_000),
        ("1G", 1_000_000_000),
        ("1GB", 1_000_000_000),
        ("1.5KB", 1500),
        ("1.5KiB", 1536),
        ("16 KiB", 16 * 1024),
        (" 2MiB ", 2 * 1024**2),
        (512, 512),
        (0, 0),
    ],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "abc", "KiB", "16XB", "16 K iB", "1.2.3MB", "0x10"])
def test_parse_size_refuses_malformed(text: str) -> None:
    with pytest.raises(UnitError) as info:
        parse_size(text)
    assert info.value.reason == "not a size (like 512, 16KiB, 10MiB, 1GB)"


@pytest.mark.parametrize("value", ["-1", "-16KiB", -1])
def test_parse_size_refuses_negative(value: str | int) -> None:
    with pytest.raises(UnitError) as info:
        parse_size(value)
    assert info.value.reason == "a size cannot be negative"


@pytest.mark.parametrize("value", ["0.3KiB", "1.5", "0.0001KB"])
def test_parse_size_refuses_fractional_bytes(value: str) -> None:
    with pytest.raises(UnitError) as info:
        parse_size(value)
    assert info.value.reason == "not a whole number of bytes"


@pytest.mark.parametrize("value", [True, 1.5, None])
def test_parse_size_refuses_non_sizes(value: object) -> None:
    with pytest.raises(UnitError):
        parse_size(value)  # type: ignore[arg-type]


@given(
    st.integers(min_value=0, max_value=10**9),
    st.sampled_from(list({"B": 1, "KiB": 1024, "MiB": 1024**2, "KB": 1000, "GB": 10**9}.items())),
)
def test_parse_size_scales_by_unit(count: int, unit: tuple[str, int]) -> None:
    suffix, factor = unit
    assert parse_size(f"{count}{suffix}") == count * factor
