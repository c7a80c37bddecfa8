import pytest

from leads import crypto
from tests.leads.factories import encrypt_phone, make_platform, rsa_pair

pytestmark = pytest.mark.django_db


def test_round_trip_and_any_active_pair_decrypts():
    setup = make_platform()
    assert crypto.decrypt_phone(encrypt_phone("+14155550123", setup.pair.public_pem)) == "+14155550123"
    from tests.leads.factories import store_pair

    newer = store_pair(rsa_pair(1))
    assert crypto.current_public_pem() == newer.public_pem
    assert crypto.decrypt_phone(encrypt_phone("+33612345678", setup.pair.public_pem)) == "+33612345678"


def test_failures_are_all_the_same():
    from cryptography.hazmat.primitives import hashes

    setup = make_platform()
    good = encrypt_phone("+14155550123", setup.pair.public_pem)
    for bad in (
        "not base64!!",
        good[:-8],
        encrypt_phone("+1415", setup.pair.public_pem, hash_algorithm=hashes.SHA1()),
        encrypt_phone("+1415", rsa_pair(2).public_pem),
        "",
        "A" * 3000,
    ):
        with pytest.raises(crypto.DecryptionFailed) as info:
            crypto.decrypt_phone(bad)
        assert str(info.value) == ""
