"""Reading a session's log from its objects (runner/logs.py), pure: which objects are read, in
which order, and which bytes of each are new, for parts, merged objects, both at once (a session
cut off between merging and deleting), gaps, and objects no session writes."""

from __future__ import annotations

from runner.logs import Cursor, Span, merged_name, parse_span, part_name, plan

LOG = "trainer.log"


def spans(*names: str) -> list[Span]:
    parsed = [parse_span(LOG, name) for name in names]
    assert None not in parsed, names
    return [span for span in parsed if span is not None]


def read(objects: dict[str, bytes], cursor: Cursor | None = None) -> bytes:
    """What a reader shows of a folder holding `objects` (name → bytes), from `cursor` on."""
    cursor = cursor or Cursor()
    shown = b""
    for span in plan(spans(*objects), cursor):
        new = cursor.take(span, objects[span.name])
        assert new is not None, span
        shown += new
    return shown


def parts(*chunks: bytes, first: int = 1) -> dict[str, bytes]:
    return {part_name(LOG, first + i): chunk for i, chunk in enumerate(chunks)}


def test_names_are_parsed_in_their_canonical_forms_only() -> None:
    assert part_name(LOG, 7) == "trainer.log.000007" and merged_name(LOG, 1, 720) == "trainer.log.000001-000720"
    assert parse_span(LOG, "trainer.log.000007") == Span(7, 7, "trainer.log.000007")
    assert parse_span(LOG, "trainer.log.1234567") == Span(1234567, 1234567, "trainer.log.1234567")
    assert parse_span(LOG, "trainer.log.000001-000720") == Span(1, 720, "trainer.log.000001-000720")
    for name in ("trainer.log.0000007", "trainer.log.7", "trainer.log.000000", "trainer.log.000009-000003",
                 "trainer.log.000001-0000720", "trainer.log.00000a", "trainer.log.000001-", "trainer.log.",
                 "events.jsonl.000001", "trainer.logx.000001", "trainer.log.000001.bak"):
        assert parse_span(LOG, name) is None, name


def test_parts_are_read_in_the_order_of_their_numbers() -> None:
    objects = {part_name(LOG, n): f"line {n}\n".encode() for n in (10, 2, 1, 1000000, 9)}
    assert read(objects) == b"line 1\nline 2\nline 9\nline 10\nline 1000000\n"


def test_a_merged_object_stands_for_the_parts_it_covers_whether_or_not_they_are_left() -> None:
    merged = {merged_name(LOG, 1, 3): b"a\nb\nc\n"}
    after = parts(b"d\n", first=4)
    assert read({**merged, **after}) == b"a\nb\nc\nd\n"
    cut_off = {**parts(b"a\n", b"b\n", b"c\n"), **merged, **after}  # died before deleting any part
    assert [s.name for s in plan(spans(*cut_off), Cursor())] == [merged_name(LOG, 1, 3), part_name(LOG, 4)]
    assert read(cut_off) == b"a\nb\nc\nd\n"
    half_deleted = {part_name(LOG, 3): b"c\n", **merged, **after}
    assert read(half_deleted) == b"a\nb\nc\nd\n"


def test_a_reader_that_read_parts_goes_on_inside_the_object_they_were_merged_into() -> None:
    cursor = Cursor()
    assert read(parts(b"a\n", b"bb\n"), cursor) == b"a\nbb\n"
    assert cursor.part == 2
    merged = {merged_name(LOG, 1, 4): b"a\nbb\nccc\nd\n"}
    assert read(merged, cursor) == b"ccc\nd\n"
    assert read({**merged, **parts(b"e\n", first=5)}, cursor) == b"e\n"
    assert read({**merged, **parts(b"e\n", first=5)}, cursor) == b""


def test_a_missing_part_is_skipped_and_the_rest_is_read() -> None:
    objects = {**parts(b"a\n"), **parts(b"c\n", first=3)}
    cursor = Cursor()
    assert read(objects, cursor) == b"a\nc\n"
    assert read({**objects, **parts(b"d\n", first=4)}, cursor) == b"d\n"


def test_an_object_that_does_not_fit_what_was_read_is_refused_and_the_cursor_stays() -> None:
    cursor = Cursor()
    read({**parts(b"a\n"), **parts(b"c\n", first=3)}, cursor)  # part 2 missing: bytes before 3 unknown
    merged = Span(1, 4, merged_name(LOG, 1, 4))
    assert plan([merged], cursor) == [], "planned an object whose start the reader cannot place"
    assert cursor.take(merged, b"a\nb\nc\nd\n") is None and cursor.part == 3

    short = Cursor()
    read(parts(b"aaaa\n", b"bbbb\n"), short)
    assert short.take(Span(1, 3, merged_name(LOG, 1, 3)), b"x\n") is None and short.part == 2


def test_overlapping_merged_objects_read_each_part_once() -> None:
    objects = {merged_name(LOG, 1, 3): b"a\nb\nc\n", merged_name(LOG, 2, 5): b"b\nc\nd\ne\n", **parts(b"f\n", first=6)}
    assert read(objects) == b"a\nb\nc\nf\n", "an object starting inside another must not repeat its lines"
    objects = {merged_name(LOG, 1, 5): b"a\nb\nc\nd\ne\n", merged_name(LOG, 1, 3): b"a\nb\nc\n"}
    assert [s.name for s in plan(spans(*objects), Cursor())] == [merged_name(LOG, 1, 5)]
