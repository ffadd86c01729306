"""Replies out through the inbox's SMTP server (``aiosmtplib``: no thread per send).

A reply is ``multipart/alternative`` (text, and HTML: the agent's or one made from the
text) inside ``multipart/mixed`` when it has files. Its headers thread it:
``Message-ID`` in Postroom's scheme (conversation token and message id, see
:mod:`connectors.email.threading`), ``In-Reply-To`` the message it answers,
``References`` the thread's ids, ``Reply-To`` the inbox address with the conversation's
token. The server's refusal (5xx) is a :class:`PermanentSendError` carrying its reply;
4xx answers and network trouble are transient (the runner retries with backoff).
"""

from __future__ import annotations

import html as html_lib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Any

import aiosmtplib

from connectors.base import AuthFailed, OutboundMessage, PermanentSendError, TransientError, redact
from connectors.email.threading import is_token, own_message_id, reply_address

#: References kept in a reply (the root and the most recent ones).
MAX_REFERENCES = 20


@dataclass(frozen=True)
class SmtpAccount:
    """Where replies go out."""

    host: str
    port: int
    login: str | None
    password: str | None
    implicit_tls: bool = False
    starttls: bool = True
    timeout: float = 30.0

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], secrets: Mapping[str, Any], address: str) -> SmtpAccount | None:
        """The inbox's SMTP settings, or None when it has none."""
        host = settings.get("smtp_address")
        enabled = settings.get("smtp_enabled")
        if not host or enabled in (False, "false", "0"):
            return None
        implicit = str(settings.get("smtp_enable_ssl_tls") or "").lower() in ("1", "true", "yes")
        starttls_setting = settings.get("smtp_enable_starttls_auto")
        starttls = True if starttls_setting is None else str(starttls_setting).lower() in ("1", "true", "yes")
        return cls(
            host=str(host),
            port=int(settings.get("smtp_port") or (465 if implicit else 587)),
            login=str(settings.get("smtp_login") or "") or (address if secrets.get("smtp_password") else None),
            password=str(secrets.get("smtp_password") or "") or None,
            implicit_tls=implicit,
            starttls=starttls and not implicit,
            timeout=float(settings.get("smtp_timeout") or 30.0),
        )


def build_reply(
    message: OutboundMessage, *, from_address: str, domain: str, from_name: str | None = None
) -> tuple[EmailMessage, str]:
    """The MIME message of a reply and its Message-ID (without ``<>``)."""
    token = message.conversation_thread_key if is_token(message.conversation_thread_key) else None
    message_id = own_message_id(token, message.message_id, domain)
    thread: list[str] = [str(i) for i in message.metadata.get("thread_source_ids") or [] if i]
    answered = message.in_reply_to[0] if message.in_reply_to else (thread[-1] if thread else None)
    references = list(dict.fromkeys([*thread, *([answered] if answered else [])]))
    if len(references) > MAX_REFERENCES:
        references = references[:1] + references[-(MAX_REFERENCES - 1):]

    mail = EmailMessage()
    mail["From"] = formataddr((from_name, from_address)) if from_name else from_address
    mail["To"] = message.recipient_source_id
    subject = str(message.metadata.get("subject") or "").strip()
    if subject and not subject.lower().startswith(("re:", "aw:", "sv:", "antw:")):
        subject = f"Re: {subject}"
    mail["Subject"] = subject or "Re: your message"
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    mail["Message-ID"] = f"<{message_id}>"
    if answered:
        mail["In-Reply-To"] = f"<{answered}>"
    if references:
        mail["References"] = " ".join(f"<{r}>" for r in references)
    mail["Reply-To"] = reply_address(from_address, token)
    mail["X-Postroom-Message"] = str(message.message_id)
    text = message.text or ""
    mail.set_content(text, cte="quoted-printable" if text.isascii() else "base64")
    body_html = message.html or _html_of(text)
    mail.add_alternative(body_html, subtype="html")
    for attachment in message.attachments:
        if attachment.data is None:
            raise PermanentSendError(400, f"attachment {attachment.file_name or ''} has no stored bytes")
        major, _, minor = (attachment.content_type or "application/octet-stream").partition("/")
        mail.add_attachment(attachment.data, maintype=major or "application", subtype=minor or "octet-stream",
                            filename=attachment.file_name or "attachment")
    return mail, message_id


def _html_of(text: str) -> str:
    escaped = html_lib.escape(text).replace("\n", "<br>\n")
    return f'<!DOCTYPE html><html><body><div dir="auto">{escaped}</div></body></html>'


async def send_reply(
    account: SmtpAccount, message: OutboundMessage, *, from_address: str, domain: str, from_name: str | None = None
) -> str:
    """Send one reply; returns its Message-ID (without ``<>``)."""
    mail, message_id = build_reply(message, from_address=from_address, domain=domain, from_name=from_name)
    secrets = [account.password]
    try:
        await aiosmtplib.send(
            mail,
            hostname=account.host,
            port=account.port,
            username=account.login if account.password else None,
            password=account.password,
            use_tls=account.implicit_tls,
            # Required before sending a password; opportunistic otherwise; never when off.
            start_tls=(True if account.password else None) if account.starttls else False,
            tls_context=ssl.create_default_context() if account.implicit_tls or account.starttls else None,
            timeout=account.timeout,
        )
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise AuthFailed(redact(f"SMTP login refused: {exc.code} {exc.message}", secrets)) from None
    except aiosmtplib.SMTPRecipientsRefused as exc:
        first = exc.recipients[0] if exc.recipients else None
        code = first.code if first is not None else 550
        text = first.message if first is not None else str(exc)
        raise PermanentSendError(code, redact(f"recipient refused: {text}", secrets)) from None
    except aiosmtplib.SMTPResponseException as exc:
        text = redact(f"{exc.message}", secrets)
        if 500 <= exc.code < 600:
            raise PermanentSendError(exc.code, text) from None
        raise TransientError(f"SMTP {exc.code}: {text}") from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        text = f"SMTP {account.host}:{account.port}: {type(exc).__name__}: {exc}"
        raise TransientError(redact(text, secrets)) from None
    return message_id
