"""Search text: normalisation, query terms, grams and highlighting (pure, tables of cases)."""

from __future__ import annotations

import pytest

from service.search.text import (
    GRAM,
    SUBSTRING,
    WORD,
    QueryError,
    Term,
    clean,
    grams,
    highlight,
    normalize,
    parse_query,
)

NORMALIZED = [
    ("Split Bill", "split bill"),
    ("ＰＯＳ　レジ", "pos レジ"),  # full-width letters and the ideographic space
    ("ｶｲｹｲ", "カイケイ"),  # half-width katakana
    ("ｶﾞｿﾘﾝ", "ガソリン"),  # with a half-width voiced sound mark
    ("Straße", "strasse"),
    ("①", "1"),
]


@pytest.mark.parametrize(("text", "expected"), NORMALIZED)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_clean_makes_whitespace_one_space_and_drops_nul() -> None:
    assert clean("  split\n\tbill\x00 ") == "split bill"
    assert clean(None) == ""


# raw query -> [(term, mode)], ignored
QUERIES = [
    ("split bill", [("split", SUBSTRING), ("bill", SUBSTRING)], []),
    ('"Split  Bill" refund', [("split bill", SUBSTRING), ("refund", SUBSTRING)], []),
    ("割り勘", [("割り勘", SUBSTRING)], []),
    ("会計", [("会計", GRAM)], []),
    ("税", [("税", GRAM)], []),
    ("QR", [("qr", WORD)], []),
    ("ＱＲ", [("qr", WORD)], []),  # full-width: the same word
    ("a split", [("split", SUBSTRING)], ["a"]),
    ("の 会計", [("会計", GRAM)], ["の"]),
    ("税!", [("税", GRAM)], []),  # the punctuation is dropped from a single kanji
    ("税。", [("税。", GRAM)], []),  # two non-ASCII characters: a pair, like any other
    ("3.12", [("3.12", SUBSTRING)], []),
    ("split split", [("split", SUBSTRING)], []),
    ('"split', [("split", SUBSTRING)], []),  # an unbalanced quote is dropped
    ("... split", [("split", SUBSTRING)], ["..."]),
]


@pytest.mark.parametrize(("raw", "terms", "ignored"), QUERIES)
def test_parse_query(raw: str, terms: list[tuple[str, str]], ignored: list[str]) -> None:
    query = parse_query(raw)
    assert [(t.text, t.mode) for t in query.terms] == terms
    assert list(query.ignored) == ignored


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "type a word"),
        ("   ", "type a word"),
        ("a", "too short"),
        ("の", "too short"),
        ("...", "too short"),
        ("x" * 201, "at most 200 characters"),
        (" ".join(f"word{n}" for n in range(9)), "at most 8 words"),
        ("split\x00bill", "NUL"),
    ],
)
def test_parse_query_refuses(raw: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_query(raw)


def test_grams_pairs_of_non_ascii_ideographs_and_two_letter_words() -> None:
    assert grams(normalize("QRコード決済 on the UI, 税")).split() == sorted(
        ["qr", "on", "ui", "コー", "ード", "ド決", "決済", "決", "済", "税"]
    )
    # A two-letter word only stands alone: not inside "build", nor "ab" in "abc".
    assert grams("build abc x") == ""
    assert grams("") == ""


def test_every_short_term_is_in_the_grams_of_a_text_that_holds_it() -> None:
    text = normalize("割り勘の端数処理を QR で修正 (UI)")
    entries = set(grams(text).split())
    for raw in ("割り", "端数", "処理", "修", "qr", "ui"):
        (term,) = parse_query(raw).terms
        assert term.mode in (GRAM, WORD)
        assert term.text in entries, raw


HIGHLIGHTS = [
    ("Split the bill", [Term("split", SUBSTRING)], "<mark>Split</mark> the bill"),
    (
        "<b>bill</b> & co",
        [Term("bill", SUBSTRING)],
        "&lt;b&gt;<mark>bill</mark>&lt;/b&gt; &amp; co",
    ),
    ("ＱＲコード", [Term("qr", WORD)], "<mark>ＱＲ</mark>コード"),
    ("build the UI", [Term("ui", WORD)], "build the <mark>UI</mark>"),
    ("ｶﾞｿﾘﾝ代", [Term("ガソ", GRAM)], "<mark>ｶﾞｿ</mark>ﾘﾝ代"),
    ("割り勘と割り勘", [Term("割り勘", SUBSTRING)], "<mark>割り勘</mark>と<mark>割り勘</mark>"),
    # Overlapping matches are one mark.
    ("split bill", [Term("split", SUBSTRING), Term("t b", SUBSTRING)], "<mark>split b</mark>ill"),
]


@pytest.mark.parametrize(("text", "terms", "html"), HIGHLIGHTS)
def test_highlight_escapes_and_marks(text: str, terms: list[Term], html: str) -> None:
    assert highlight(text, terms) == html


def test_highlight_window_shows_the_part_with_the_matches() -> None:
    text = " ".join(["filler"] * 60) + " the split bill rounding " + " ".join(["tail"] * 60)
    html = highlight(text, [Term("split", SUBSTRING), Term("bill", SUBSTRING)], size=80)
    assert html.startswith("…") and html.endswith("…")
    assert "<mark>split</mark> <mark>bill</mark>" in html
    assert len(html) < 200
    # Words are not cut where they are separated by spaces.
    inner = html.strip("…")
    assert not inner.startswith(("iller", "ller")) and not inner.endswith(("tai", "ta"))


def test_highlight_without_a_match_shows_the_start() -> None:
    text = "a long body " * 40
    html = highlight(text, [Term("zzz", SUBSTRING)], size=50)
    assert html.startswith("a long body") and html.endswith("…")
