"""Public identifiers."""

from __future__ import annotations

from service.ids import is_avatar_id, new_id


def test_ids_have_their_prefix_and_a_ulid() -> None:
    for prefix in ("avat", "sess", "req", "acct", "key"):
        value = new_id(prefix)
        assert value.startswith(f"{prefix}_") and len(value) == len(prefix) + 27


def test_ids_made_one_after_another_sort_by_age() -> None:
    made = [new_id("avat") for _ in range(2000)]
    assert sorted(made) == made and len(set(made)) == len(made)


def test_is_avatar_id() -> None:
    assert is_avatar_id(new_id("avat"))
    assert is_avatar_id("avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX")
    for value in (
        "avat_01jd3z8g9yr3k2n5m6p7q8w4tx",  # lower case
        "avat_01JD3Z8G9YR3K2N5M6P7Q8W4T",  # 25 characters
        "avat_01JD3Z8G9YR3K2N5M6P7Q8W4TXX",
        "avat_81JD3Z8G9YR3K2N5M6P7Q8W4TX",  # over 128 bits
        "avat_01JD3Z8G9YR3K2N5M6P7Q8W4TU",  # U is not Crockford base32
        "sess_01JD3Z8G9YR3K2N5M6P7Q8W4TX",
        " avat_01JD3Z8G9YR3K2N5M6P7Q8W4TX",
        "https://example.com/a.jpg",
        "",
    ):
        assert not is_avatar_id(value), value
