"""Mark audio (voice notes): signed, expiring URLs to the app's own media view, content sniffing and
storage. Used by POST /api/v1/messages/voice and by inbound WhatsApp voice notes.

- `signed_media_url(message)`: `/api/v1/messages/<msg_id>/audio?expires=<epoch>&signature=<hex>`
  (absolute with MARK_PUBLIC_BASE_URL, else with the request's host, else a path). The signature is an
  HMAC-SHA256 keyed from SECRET_KEY with a salt of its own (django.utils.crypto.salted_hmac) over the
  message id and the expiry; it is the only credential the media view asks for (Twilio fetches the
  audio of an outbound voice note with no token). SECRET_KEY_FALLBACKS still verify, so a key rotation
  does not break URLs already handed out.
- `audio_inspect(fileobj)`: the container is read from the bytes (magic number, then mutagen parses it),
  never from a file name or a declared Content-Type. MP3, WAV and OGG (Vorbis or Opus) only.
- `audio_store(organization=..., fileobj=..., format=...)`: saves into patients.storage.media_storage()
  under Message.media's upload_to rule and returns the storage name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlencode

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac

from core.domain import Invalid

logger = logging.getLogger("patients")

SIGNATURE_SALT = "patients.media.signed-url"
AUDIO_FIELD = "audio_file"
# Outbound voice notes: Twilio fetches the media when it sends, which may be after outbox retries.
OUTBOUND_URL_SECONDS = 7 * 24 * 3600
MAX_URL_SECONDS = 30 * 24 * 3600
CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "ogg": "audio/ogg"}
FORMATS = tuple(CONTENT_TYPES)
_SNIFF_BYTES = 64


@dataclass(frozen=True)
class AudioInfo:
    format: str  # mp3, wav, ogg
    duration_seconds: float
    codec: str = ""  # ogg: vorbis or opus

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


# --- Signed URLs ---------------------------------------------------------------------------------------


def _signature(message_id: str, expires: int, secret: str | None = None) -> str:
    return salted_hmac(SIGNATURE_SALT, f"{message_id}:{expires}", secret=secret, algorithm="sha256").hexdigest()


def media_url_seconds() -> int:
    return int(getattr(settings, "MARK_MEDIA_URL_SECONDS", 900))


def signed_media_path(message_id: str, *, expires_in: int | None = None, now: float | None = None) -> str:
    seconds = media_url_seconds() if expires_in is None else int(expires_in)
    if not 1 <= seconds <= MAX_URL_SECONDS:
        raise ValueError("expires_in must be between 1 second and 30 days")
    expires = int(now if now is not None else time.time()) + seconds
    query = urlencode({"expires": expires, "signature": _signature(message_id, expires)})
    return f"{reverse('mark-message-audio', kwargs={'message_id': message_id})}?{query}"


def public_base_url() -> str:
    """This server as outsiders reach it: MARK_PUBLIC_BASE_URL, else the Twilio callback base URL."""
    base = getattr(settings, "MARK_PUBLIC_BASE_URL", "") or getattr(settings, "MESSAGING_STATUS_CALLBACK_BASE_URL", "")
    return base.rstrip("/")


def signed_media_url(
    message,
    *,
    request=None,
    expires_in: int | None = None,
    base_url: str | None = None,
    now: float | None = None,
) -> str:
    """A URL to `message`'s audio (a Message or its public id) that works without a token until it
    expires (MARK_MEDIA_URL_SECONDS by default). Absolute when a public base URL is configured
    (MARK_PUBLIC_BASE_URL), else on `base_url`, else on the request's host; a path otherwise."""
    message_id = message if isinstance(message, str) else message.public_id
    path = signed_media_path(message_id, expires_in=expires_in, now=now)
    base = public_base_url() or (base_url or "").rstrip("/")
    if base:
        return base + path
    if request is not None:
        return request.build_absolute_uri(path)
    return path


class SignatureRefused(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason  # "missing", "malformed", "expired", "invalid"


def verify_media_signature(message_id: str, expires: str | None, signature: str | None, *, now: float | None = None):
    """Raise SignatureRefused unless `signature` signs (message_id, expires) and `expires` is in the
    future. Compared in constant time; every accepted key (SECRET_KEY then its fallbacks) is tried."""
    if not expires or not signature:
        raise SignatureRefused("missing")
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
        raise SignatureRefused("malformed")
    if not (signature.isascii() and len(signature) == 64):
        raise SignatureRefused("malformed")
    expires_at = int(expires)
    valid = False
    for secret in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]:
        valid |= constant_time_compare(_signature(message_id, expires_at, secret), signature)
    if not valid:
        raise SignatureRefused("invalid")
    if expires_at <= int(now if now is not None else time.time()):
        raise SignatureRefused("expired")


# --- Sniffing ------------------------------------------------------------------------------------------


def _refuse(message: str) -> Invalid:
    return Invalid(message, details={"field": AUDIO_FIELD})


def _sniff(header: bytes) -> str | None:
    if header[:4] == b"RIFF" and header[8:12] == b"WAVE":
        return "wav"
    if header[:4] == b"OggS":
        return "ogg"
    if header[:3] == b"ID3":
        return "mp3"
    if len(header) >= 2 and header[0] == 0xFF and (header[1] & 0xE0) == 0xE0:
        return "mp3"  # an MPEG audio frame sync with no ID3 tag
    return None


def audio_inspect(fileobj) -> AudioInfo:
    """The audio's container and length, read from its bytes with mutagen. Anything that is not a
    parsable MP3, WAV or OGG (Vorbis/Opus) stream is Invalid naming `audio_file`. Leaves the file
    positioned at 0."""
    from mutagen import MutagenError
    from mutagen.mp3 import MP3
    from mutagen.oggopus import OggOpus
    from mutagen.oggvorbis import OggVorbis
    from mutagen.wave import WAVE

    fileobj.seek(0)
    header = fileobj.read(_SNIFF_BYTES)
    fileobj.seek(0)
    kind = _sniff(header or b"")
    if kind is None:
        raise _refuse("audio_file must be an MP3, WAV or OGG audio file")
    codec = ""
    if kind == "wav":
        parsers = [WAVE]
    elif kind == "mp3":
        parsers = [MP3]
    elif b"OpusHead" in header:
        parsers, codec = [OggOpus], "opus"
    elif b"\x01vorbis" in header:
        parsers, codec = [OggVorbis], "vorbis"
    else:
        raise _refuse("audio_file is an OGG file but not Vorbis or Opus audio")
    try:
        info = parsers[0](fileobj).info
    except (MutagenError, ValueError, EOFError, OverflowError, ZeroDivisionError):
        raise _refuse(f"audio_file is not a readable {kind.upper()} audio file") from None
    finally:
        fileobj.seek(0)
    duration = float(getattr(info, "length", 0) or 0)
    if not duration > 0 or duration != duration:  # zero, negative or NaN
        raise _refuse("audio_file holds no audio")
    if kind == "mp3" and not getattr(info, "sample_rate", 0):
        raise _refuse("audio_file is not a readable MP3 audio file")
    return AudioInfo(format=kind, duration_seconds=duration, codec=codec)


# --- Storage -------------------------------------------------------------------------------------------


def audio_store(*, organization, fileobj, format: str) -> str:
    """Save the audio in the private media storage; returns its storage name
    (`voice/<organization pk>/<random>.<format>`, Message.media's upload_to rule)."""
    from patients.models import Message
    from patients.storage import media_storage

    if format not in CONTENT_TYPES:
        raise ValueError(f"unsupported audio format {format!r}")
    field = Message._meta.get_field("media")
    name = field.generate_filename(Message(organization=organization), f"audio.{format}")
    fileobj.seek(0)
    return media_storage().save(name, File(fileobj, name=name))


def audio_delete(name: str) -> None:
    """Remove a stored audio file (a rolled-back upload, an erased patient); missing is fine."""
    from patients.storage import media_storage

    if name:
        media_storage().delete(name)


def audio_delete_after_commit(names: Iterable[str]) -> int:
    """Remove these files once the caller's transaction commits (rows first, files after: a failure leaves
    an orphan file, never a row pointing at nothing). Returns how many are scheduled."""
    names = sorted({name for name in names if name})
    if names:
        transaction.on_commit(partial(_delete_files, names))
    return len(names)


def _delete_files(names: list[str]) -> None:
    for name in names:
        try:
            audio_delete(name)
        except Exception as exc:  # the storage may be remote (S3): log and go on, the rows are gone
            logger.warning("media: a file could not be deleted (%s)", type(exc).__name__)
