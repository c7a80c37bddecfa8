"""core.apikeys: generation format, strict parsing, bcrypt verification."""

from __future__ import annotations

import re

import bcrypt
import pytest

from core.apikeys import (
    constant_time_equals,
    generate_api_key,
    generate_secret,
    hash_secret,
    parse_api_key,
    verify_missing,
    verify_secret,
)


def test_generated_key_format():
    key = generate_api_key("lr_int")
    assert re.fullmatch(r"lr_int_[a-z0-9]{12}_[A-Za-z0-9]{40}", key.full_key)
    assert key.full_key == f"lr_int_{key.key_id}_{key.secret}"
    assert re.fullmatch(r"[a-z0-9]{12}", key.key_id)
    assert re.fullmatch(r"[A-Za-z0-9]{40}", key.secret)
    assert key.secret not in repr(key) and key.full_key not in repr(key)


def test_hash_is_bcrypt_of_the_secret_not_the_secret(settings):
    key = generate_api_key("mk")
    assert key.secret not in key.secret_hash
    assert key.secret_hash.startswith("$2b$")
    assert int(key.secret_hash.split("$")[2]) == settings.API_KEY_BCRYPT_ROUNDS
    assert verify_secret(key.secret, key.secret_hash)


def test_bcrypt_rounds_follow_the_setting(settings):
    settings.API_KEY_BCRYPT_ROUNDS = 5
    assert hash_secret("abc").startswith("$2b$05$")


def test_two_keys_differ():
    first, second = generate_api_key("lr_int"), generate_api_key("lr_int")
    assert first.key_id != second.key_id
    assert first.secret != second.secret
    assert first.secret_hash != second.secret_hash


def test_same_secret_hashes_differently_each_time():
    assert hash_secret("same") != hash_secret("same")  # random salt


def test_generate_secret():
    generated = generate_secret("sk_live")
    assert re.fullmatch(r"sk_live_[A-Za-z0-9]{40}", generated.secret)
    assert verify_secret(generated.secret, generated.secret_hash)
    assert not verify_secret(generated.secret[:-1], generated.secret_hash)
    assert generated.secret not in repr(generated)


@pytest.mark.parametrize("prefix", ["", "LR", "lr-int", "_lr", "lr_", "1lr", "lr__int"])
def test_invalid_prefix_rejected(prefix):
    with pytest.raises(ValueError):
        generate_api_key(prefix)


def test_parse_round_trip():
    key = generate_api_key("lr_int")
    assert parse_api_key(key.full_key, "lr_int") == (key.key_id, key.secret)


@pytest.mark.parametrize(
    "junk",
    [
        None,
        "",
        123,
        b"lr_int_abcdefghijkl_" + b"A" * 40,
        "lr_int_",
        "lr_int_abcdefghijkl",
        "lr_int_abcdefghijkl_" + "A" * 39,  # secret too short
        "lr_int_abcdefghijkl_" + "A" * 41,  # secret too long
        "lr_int_abcdefghijk_" + "A" * 40,  # key id too short
        "lr_int_ABCDEFGHIJKL_" + "A" * 40,  # key id must be lowercase
        "lr_int_abcdefghijkl_" + "A" * 39 + "-",
        "lr_int_abcdefghijkl_" + "A" * 40 + "\n",
        " lr_int_abcdefghijkl_" + "A" * 40,
        "mk_abcdefghijkl_" + "A" * 40,  # other prefix
        "lr_int_abcdefghijkl_" + "A" * 20 + "é" + "A" * 19,
        "lr_int_abcdefghijkl_" + "A" * 10_000,
    ],
)
def test_parse_rejects_junk(junk):
    assert parse_api_key(junk, "lr_int") is None


def test_parse_accepts_well_formed_foreign_key():
    assert parse_api_key("lr_int_abcdefghijkl_" + "A" * 40, "lr_int") == ("abcdefghijkl", "A" * 40)


def test_verify_true_and_false():
    key = generate_api_key("lr_int")
    other = generate_api_key("lr_int")
    assert verify_secret(key.secret, key.secret_hash) is True
    assert verify_secret(other.secret, key.secret_hash) is False
    assert verify_secret(key.secret + "x", key.secret_hash) is False
    assert verify_secret(key.secret.swapcase(), key.secret_hash) is False


@pytest.mark.parametrize("bad_hash", ["", "not-a-hash", "$2b$04$short", "é", None, b"$2b$"])
def test_verify_false_on_malformed_hash(bad_hash):
    assert verify_secret("anything", bad_hash) is False


def test_verify_false_on_overlong_or_empty_input():
    secret_hash = hash_secret("x" * 100)
    assert verify_secret("x" * 100, secret_hash) is True
    assert verify_secret("x" * 100_000, secret_hash) is False
    assert verify_secret("", secret_hash) is False
    assert verify_secret(None, secret_hash) is False


def test_long_secrets_are_not_truncated_at_72_bytes():
    # Plain bcrypt only reads 72 bytes: without the pre-hash these two would verify as each other.
    base = "a" * 80
    secret_hash = hash_secret(base + "1")
    assert verify_secret(base + "1", secret_hash) is True
    assert verify_secret(base + "2", secret_hash) is False


def test_hash_is_not_plain_bcrypt_of_the_secret():
    secret = "s" * 20
    assert not bcrypt.checkpw(secret.encode(), hash_secret(secret).encode())


def test_verify_missing_is_always_false():
    assert verify_missing("whatever") is False


def test_constant_time_equals():
    assert constant_time_equals("abc", "abc") is True
    assert constant_time_equals("abc", "abd") is False
    assert constant_time_equals("abc", "abcd") is False
    assert constant_time_equals(b"abc", "abc") is True
    assert constant_time_equals("é", "é") is True
    assert constant_time_equals(None, "abc") is False
