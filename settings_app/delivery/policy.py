"""What each delivery outcome means for a notice and for its configuration, and when to try again.

Settings (seconds unless noted; defaults in destiny_mail/settings.py):
DELIVERY_RETRY_BASE and DELIVERY_RETRY_MAX: exponential back-off with jitter per notice;
DELIVERY_GIVE_UP_AFTER: a notice still undelivered this long after it was queued fails with its reason;
DELIVERY_BUSY_BASE and DELIVERY_BUSY_MAX: back-off of a whole configuration after a 421 or an
unreachable server; DELIVERY_LEASE: how long a worker may hold claimed notices;
DELIVERY_BATCH (notices): the size of a claim; DELIVERY_CAP_WINDOW: the cap's rolling window.
"""

import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings

from settings_app.delivery.pipeline import Result, Stage
from settings_app.mail.diagnosis import Category, advice_of

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


def lease() -> timedelta:
    return timedelta(seconds=settings.DELIVERY_LEASE)


def batch_size() -> int:
    return settings.DELIVERY_BATCH


def give_up_after() -> timedelta:
    return timedelta(seconds=settings.DELIVERY_GIVE_UP_AFTER)


def _jittered(base: timedelta, ceiling: timedelta, exponent: int) -> timedelta:
    # The doubling stops well past any ceiling: 2 ** exponent alone overflows a timedelta after ~47 failures in a row
    # (a server down for a day), and the back-off itself would then fail.
    delay = min(ceiling, base * 2 ** min(max(exponent, 0), 32))
    return delay * random.uniform(0.5, 1.0)  # noqa: S311 (jitter spreads retries; not a secret)


def retry_delay(attempts: int) -> timedelta:
    """How long a notice waits after its `attempts`-th temporary failure."""
    base, ceiling = timedelta(seconds=settings.DELIVERY_RETRY_BASE), timedelta(seconds=settings.DELIVERY_RETRY_MAX)
    return _jittered(base, ceiling, attempts - 1)


def busy_delay(streak: int) -> timedelta:
    """How long a whole configuration waits after its `streak`-th consecutive 421 or unreachable server."""
    base, ceiling = timedelta(seconds=settings.DELIVERY_BUSY_BASE), timedelta(seconds=settings.DELIVERY_BUSY_MAX)
    return _jittered(base, ceiling, streak - 1)


def gives_up(created_at: datetime, now: datetime) -> bool:
    return now - created_at >= give_up_after()


class Action(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # this notice later
    BUSY = "busy"  # this notice later, and the whole configuration backs off
    UNCONFIRMED = "unconfirmed"  # retried with the same Message-ID: may arrive twice
    FAIL = "fail"  # this notice, permanently
    PAUSE = "pause"  # the configuration is wrong: pause it, the notice waits


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    category: str
    reply: str  # "550 5.1.1 ..." as the server said it: untrusted text, escaped wherever shown
    code: int | None = None


def judge(result: Result) -> Verdict:
    """Map what the server said about one message to what happens next."""
    reply = f"{result.code} {result.reply}".strip() if result.code else result.reply
    if result.accepted:
        return Verdict(Action.SENT, "", reply, result.code)
    if result.code is None:
        return _without_reply(result, reply)
    if result.code == 421:
        return Verdict(Action.BUSY, Category.SERVER_BUSY, reply, 421)
    if result.code < 500:
        return Verdict(Action.RETRY, Category.TEMPORARY_FAILURE, reply, result.code)
    return _permanent(result, reply)


def _without_reply(result: Result, reply: str) -> Verdict:
    if result.transmitted:
        return Verdict(Action.UNCONFIRMED, Category.CONNECTION_LOST, reply)
    if result.stage is Stage.RCPT:
        return Verdict(Action.FAIL, Category.INVALID_ADDRESS, reply)
    return Verdict(Action.RETRY, Category.CONNECTION_LOST, reply)


def _permanent(result: Result, reply: str) -> Verdict:
    code = result.code
    enhanced = _ENHANCED.match(result.reply)
    subject = enhanced.group(2) if enhanced else ""
    text = result.reply.lower()
    if code == 530 or (subject == "7" and enhanced and enhanced.group(3) == "0" and "auth" in text):
        return Verdict(Action.PAUSE, Category.AUTH_REQUIRED, reply, code)
    if result.stage is Stage.MAIL:
        return Verdict(Action.PAUSE, Category.SENDER_REJECTED, reply, code)
    if result.stage is Stage.RCPT:
        if "relay" in text or (subject == "7" and "recipient" not in text):
            return Verdict(Action.PAUSE, Category.RELAY_DENIED, reply, code)
        return Verdict(Action.FAIL, Category.RECIPIENT_REJECTED, reply, code)
    if subject == "7" and any(word in text for word in ("send as", "sendas", "sender", "permission")):
        return Verdict(Action.PAUSE, Category.SENDER_REJECTED, reply, code)
    return Verdict(Action.FAIL, Category.DATA_REJECTED, reply, code)


def connection_verdict(category: str, reply: str) -> Verdict:
    """What a failure to open the session means: configuration problems pause, the rest back off."""
    advice = advice_of(category)
    return Verdict(Action.PAUSE if advice and advice.configuration else Action.BUSY, category, reply)
