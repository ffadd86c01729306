"""Turning the bytes of a mail part into readable text, whatever charset it claims.

Mail declares charsets wrongly all the time (``gb2312`` text that uses GBK characters,
``iso-8859-1`` that is really windows-1252, no charset at all on 8-bit text). The
declared charset is tried first through a superset where one exists, then UTF-8, then
``charset-normalizer``'s detection; the result is NFC-normalized so that decomposed
Vietnamese (windows-1258 keeps tone marks as combining characters) reads as usual.
"""

from __future__ import annotations

import codecs
import unicodedata

from charset_normalizer import from_bytes

#: Declared charset -> the codec to decode it with (a superset the senders really use).
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "big5": "big5hkscs",
    "x-big5": "big5hkscs",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
    "windows-874": "cp874",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "iso-8859-8-i": "iso-8859-8",
    "unicode-1-1-utf-7": "utf-7",
    "utf8": "utf-8",
}


def codec_for(charset: str | None) -> str | None:
    """The Python codec to decode a declared charset with, or None when unknown."""
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()
    name = _SUPERSETS.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_text(data: bytes, charset: str | None) -> tuple[str, str]:
    """``data`` as text and the codec that read it (``"detected:<name>"`` after detection)."""
    codec = codec_for(charset)
    if codec is not None:
        try:
            return _normal(data.decode(codec)), codec
        except (UnicodeDecodeError, LookupError):
            pass
    try:
        return _normal(data.decode("utf-8")), "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(data[:200_000]).best()
    if best is not None and best.encoding:
        try:
            return _normal(data.decode(best.encoding)), f"detected:{best.encoding}"
        except (UnicodeDecodeError, LookupError):
            pass
    return _normal(data.decode(codec or "cp1252", errors="replace")), f"{codec or 'cp1252'}:replace"


def _normal(text: str) -> str:
    # NUL bytes break PostgreSQL text columns; decomposed marks must compose.
    return unicodedata.normalize("NFC", text.replace("\x00", ""))
