"""Code and birth date text: generation, normal form, display form, parsing."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from hds_codes.values import (
    ALPHABET,
    CODE_LENGTH,
    InvalidBirthDate,
    InvalidCodeFormat,
    format_code,
    generate_code,
    normalise_code,
    parse_birth_date,
)


def test_alphabet_is_crockford_base32() -> None:
    assert len(ALPHABET) == 32
    assert set(ALPHABET).isdisjoint("ILOU")
    assert ALPHABET == "".join(sorted(ALPHABET))


def test_generated_codes_use_all_60_bits_of_the_alphabet() -> None:
    codes = [generate_code() for _ in range(4000)]
    assert len(set(codes)) == len(codes)
    assert all(len(code) == CODE_LENGTH and set(code) <= set(ALPHABET) for code in codes)
    symbols = Counter("".join(codes))
    # 48,000 symbols over 32 letters: each expected 1,500 times; a skewed generator
    # (say modulo bias or a missing letter) falls far outside this band.
    assert set(symbols) == set(ALPHABET)
    assert all(1200 < count < 1800 for count in symbols.values())
    # Every position varies, including the first (no leading-zero truncation).
    assert all(len({code[i] for code in codes}) == 32 for i in range(CODE_LENGTH))


@pytest.mark.parametrize(
    "typed",
    [
        "7K3Q-M9XD-2HVA",
        "7k3q-m9xd-2hva",
        "7K3QM9XD2HVA",
        " 7k3q m9xd 2hva ",
        "7K3Q_M9XD.2HVA",
    ],
)
def test_codes_are_accepted_in_any_case_with_or_without_separators(typed: str) -> None:
    assert normalise_code(typed) == "7K3QM9XD2HVA"


def test_crockford_aliases_map_to_digits() -> None:
    assert normalise_code("IOL0-1ABC-DEFG") == "1010" + "1ABC" + "DEFG"
    assert normalise_code("ilo0-1abc-defg") == "11001ABCDEFG"


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "7K3Q-M9XD-2HV",
        "7K3Q-M9XD-2HVAA",
        "7K3Q-M9XD-2HVU",
        "7K3Q/M9XD/2HVA",
        "Ä" * 12,
        "x" * 65,
    ],
)
def test_malformed_codes_are_refused(typed: str) -> None:
    with pytest.raises(InvalidCodeFormat):
        normalise_code(typed)


def test_display_form() -> None:
    assert format_code("7K3QM9XD2HVA") == "7K3Q-M9XD-2HVA"


def test_birth_dates_in_both_forms() -> None:
    today = dt.date(2025, 6, 1)
    assert parse_birth_date("19700131", today=today) == dt.date(1970, 1, 31)
    assert parse_birth_date("1970-01-31", today=today) == dt.date(1970, 1, 31)
    assert parse_birth_date(" 2025-06-02 ", today=today) == dt.date(2025, 6, 2)


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "1970131",
        "19700231",
        "1970-13-01",
        "31.01.1970",
        "2025-06-03",
        "18000101",
        "\u0661\u0669\u0667\u0660\u0660\u0661\u0663\u0661",
    ],
)
def test_bad_birth_dates_are_refused(typed: str) -> None:
    with pytest.raises(InvalidBirthDate):
        parse_birth_date(typed, today=dt.date(2025, 6, 1))
