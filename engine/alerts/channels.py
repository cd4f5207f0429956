"""Sending one alert notification to one channel: a webhook (the message as a JSON
POST), a Slack-compatible incoming webhook (``{"text": …}``) or e-mail over SMTP.

Blocking (run on a thread). A network error, a timeout or a 5xx/408/425/429 answer
raises an ``OSError`` (the delivery task retries it with backoff); a 4xx or a
redirect raises ``ValueError`` (not retried). HTTP goes through
:func:`engine.webhook.post_json`, so the same address checks apply (public
addresses only unless the channel has ``allow_private = true`` or the setting
``webhook_allow_private`` is on). The e-mail password is read from the environment
or a file at send time, never from the store.
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from engine.alerts.config import Channel
from engine.webhook import post_json

DEFAULT_TIMEOUT = 10.0


def message_text(message: Mapping[str, Any]) -> str:
    """One line for people: ``[FIRING critical] images-backlog queue:images: backlog =
    1200 (rule text)``."""
    notice = str(message.get("notice", "")).upper()
    severity = message.get("severity", "")
    head = f"[{notice} {severity}]".replace(" ]", "]")
    rule, key = message.get("rule", ""), message.get("key", "")
    text = f"{head} {rule} {key}: {message.get('summary', '')}"
    if message.get("condition"):
        text += f" ({message['condition']})"
    return text


def send(channel: Channel, message: Mapping[str, Any], allow_private: bool = False) -> str:
    """Send ``message`` to ``channel``; returns what happened (e.g. ``"HTTP 200"``)."""
    timeout = float(channel.get("timeout", DEFAULT_TIMEOUT))
    private = allow_private or bool(channel.get("allow_private", False))
    if channel.type == "webhook":
        body = json.dumps(dict(message), ensure_ascii=False).encode("utf-8")
        return f"HTTP {post_json(str(channel.get('url')), body, timeout, private)}"
    if channel.type == "slack":
        body = json.dumps({"text": message_text(message)}, ensure_ascii=False).encode("utf-8")
        return f"HTTP {post_json(str(channel.get('url')), body, timeout, private)}"
    if channel.type == "email":
        return send_email(channel, message, timeout)
    raise ValueError(f"channel {channel.name!r} has an unknown type {channel.type!r}")


def send_email(channel: Channel, message: Mapping[str, Any], timeout: float) -> str:
    to = channel.get("to")
    recipients = [to] if isinstance(to, str) else list(to or ())
    mail = EmailMessage()
    mail["From"] = str(channel.get("from"))
    mail["To"] = ", ".join(recipients)
    mail["Subject"] = message_text(message)[:200]
    mail.set_content(
        message_text(message) + "\n\n" + json.dumps(dict(message), indent=2, ensure_ascii=False)
    )
    host, port = str(channel.get("host")), int(channel.get("port", 587))
    security = channel.get("security", "starttls")
    user, password = credentials(channel)
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if security == "tls":
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        if security == "starttls":
            smtp.starttls(context=context)
        if user and password is not None:
            smtp.login(user, password)
        refused = smtp.send_message(mail)
    if refused:
        raise ValueError(f"the SMTP server refused {', '.join(refused)}")
    return f"mailed {len(recipients)} recipient(s) via {host}:{port}"


def credentials(channel: Channel) -> tuple[str | None, str | None]:
    """The SMTP user and password: ``user`` or ``user_env``; ``password_env`` or
    ``password_file`` (read now; never stored)."""
    user = channel.get("user")
    if user is None and channel.get("user_env"):
        user = os.environ.get(str(channel.get("user_env")))
    password = None
    if channel.get("password_env"):
        name = str(channel.get("password_env"))
        password = os.environ.get(name)
        if password is None:
            raise ValueError(f"channel {channel.name!r}: the environment has no {name}")
    elif channel.get("password_file"):
        path = Path(str(channel.get("password_file"))).expanduser()
        try:
            password = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"channel {channel.name!r}: cannot read {path}: {exc}") from None
    return (str(user) if user else None), password
