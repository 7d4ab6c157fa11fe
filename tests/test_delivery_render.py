"""The fast notice writer: the same bodies as a full Django render, and headers that parse back to their values."""

import datetime as dt
import email
import email.policy
from email.header import decode_header, make_header

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from settings_app.delivery.queue import clean_name
from settings_app.delivery.render import Letter, Letterhead, NoticeWriter, render_full

WHEN = dt.datetime(2025, 3, 10, 9, 30, tzinfo=dt.UTC)
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
names = text.map(clean_name)
titles = st.lists(text.filter(str.strip), min_size=1, max_size=4)


def letterhead(kind="overdue", diverted=False, school="North High <&>"):
    return Letterhead(kind, school, "North", "Ms Reed", "reed@example.org", diverted)


def letter(name="Ana", note="", items=(), email_address="ana@example.org"):
    return Letter(name, email_address, note, list(items), "<abc.123@destiny.example.org>", WHEN)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(kind=st.sampled_from(["overdue", "resource_list"]), name=names, note=text, titles=titles, diverted=st.booleans())
def test_the_fast_bodies_equal_a_full_django_render_whatever_the_values(kind, name, note, titles, diverted):
    items = [{"title": title, "due": "2025-03-01"} for title in titles]
    head, body = letterhead(kind, diverted), letter(name, note, items)
    _, full_text, full_html = render_full(head, body)
    assert NoticeWriter().bodies(head, body) == (full_text, full_html)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(name=names, titles=titles)
@example(name="0" * 26 + "¡" * 10, titles=["0"])  # a name split across two encoded words
def test_every_written_message_parses_back_to_its_headers_and_bodies(name, titles):
    items = [{"title": title, "due": "2025-03-01"} for title in titles]
    head, body = letterhead(), letter(name, "", items)
    raw = NoticeWriter().message(head, body)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    subject, full_text, full_html = render_full(head, body)
    assert not parsed.defects and all(not part.defects for part in parsed.walk())
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    assert b"\n" not in raw.replace(b"\r\n", b"")
    (to,) = parsed["To"].addresses
    assert to.addr_spec == "ana@example.org"
    # Python's address parser keeps the space between adjacent encoded words that RFC 2047 (6.2) says to drop
    # (its own folding trips over it too); the RFC 2047 decoder of email.header reads them right.
    rfc2047 = str(make_header(decode_header(email.message_from_bytes(raw, policy=email.policy.compat32)["To"])))
    assert to.display_name == name or rfc2047 == f"{name} <ana@example.org>"
    assert parsed["Subject"] == subject
    assert parsed["Message-ID"] == "<abc.123@destiny.example.org>"
    assert parsed["Date"].datetime == WHEN
    assert str(parsed["From"]) == str(parsed["Reply-To"]) == "Ms Reed <reed@example.org>"
    plain, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().replace("\r\n", "\n") == full_text
    assert html.get_content().replace("\r\n", "\n") == full_html


def test_html_slots_are_escaped_and_text_slots_are_not():
    head, body = letterhead(), letter('<b>"Bo"</b>', "", [{"title": "<script>x</script> & co", "due": "2025-03-01"}])
    text_body, html_body = NoticeWriter().bodies(head, body)
    assert "<script>" in text_body and "<script>" not in html_body
    assert "&lt;script&gt;x&lt;/script&gt; &amp; co" in html_body and "&lt;b&gt;&quot;Bo&quot;" in html_body


def test_an_address_with_a_non_ascii_local_part_is_refused_before_sending():
    with pytest.raises(ValueError, match="SMTPUTF8"):
        NoticeWriter().message(letterhead(), letter(email_address="jösé@example.org"))


@pytest.mark.parametrize(
    "address", ["ana@example.org\r\nBcc: x@example.org", "ana@example.org>, <x@example.org", "ana @example.org"]
)
def test_an_address_that_cannot_stand_in_a_header_is_refused(address):
    from settings_app.delivery.render import ascii_address

    with pytest.raises(ValueError):
        ascii_address(address)
