"""Message policy rules, each with its documented code (DESIGN.md: command_status at submit, err 8xx after)."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.numbers import InvalidNumber
from smsgw.config import AccountConfig, Config, ConfigError, ModemConfig, RouteConfig, config_from_mapping, load_config
from smsgw.pdu.constants import CommandStatus, GatewayError, Npi, Ton
from smsgw.pdu.segmentation import TooManySegments, segment_text
from smsgw.pdu.text import Encoding
from smsgw.scheduler.content import Content, Encoded, Text, prepare_content, prepare_text
from smsgw.scheduler.model import NewSegment
from smsgw.scheduler.number_files import InvalidLine, read_number_file
from smsgw.scheduler.policy import (
    NETWORK_SENDER,
    BlockedContent,
    ContentRules,
    InvalidSender,
    SenderNotAllowed,
    KeywordFile,
    MessagePolicy,
    Rejection,
    SenderAddress,
    check_esme_parts,
    check_policy_config,
    check_recipient,
    check_recipients,
    check_transfer,
    is_opt_out,
    is_promotional,
    parse_keywords,
    record_opt_out,
    resolve_sender,
    visible_accounts,
)

ACCOUNT = AccountConfig(system_id="acme", password_hash="x", sender_ids=("ACME", "447700900001"))
ROUTE = RouteConfig(name="uk")


# --- sender IDs ------------------------------------------------------------------------------------------------


ALPHANUMERIC = (Ton.ALPHANUMERIC, Npi.UNKNOWN)
INTERNATIONAL = (Ton.INTERNATIONAL, Npi.ISDN)
GATEWAY_NUMBER_ROUTE = RouteConfig(name="cn", sender_override="8613800000000")


@pytest.mark.parametrize(
    ("source", "route", "expected"),
    [
        ("ACME", ROUTE, SenderAddress("ACME", *ALPHANUMERIC)),
        ("447700900001", ROUTE, SenderAddress("447700900001", *INTERNATIONAL)),
        ("", ROUTE, SenderAddress("ACME", *ALPHANUMERIC)),  # no source_addr: the first registered ID
        ("#ACME", RouteConfig(name="tw", allow_hash_sender=True), SenderAddress("#ACME", *ALPHANUMERIC)),
        ("ACME", GATEWAY_NUMBER_ROUTE, SenderAddress("8613800000000", *INTERNATIONAL)),
        ("nobody", RouteConfig(name="cn", sender_override="GATEWAY"), SenderAddress("GATEWAY", *ALPHANUMERIC)),
    ],
)
def test_sender_resolution(source: str, route: RouteConfig, expected: SenderAddress) -> None:
    assert resolve_sender(source, ACCOUNT, route) == expected


@pytest.mark.parametrize(
    ("source", "account", "route", "reason"),
    [
        ("TOOLONGSENDER", AccountConfig(system_id="a", password_hash="x"), ROUTE, "1-11 letters"),
        ("ACME CO", AccountConfig(system_id="a", password_hash="x"), ROUTE, "1-11 letters"),
        ("Café", AccountConfig(system_id="a", password_hash="x"), ROUTE, "1-11 letters"),
        ("07700900001", AccountConfig(system_id="a", password_hash="x"), ROUTE, "not an international number"),
        ("44791112345", AccountConfig(system_id="a", password_hash="x"), ROUTE, "not a valid number in GB"),
        ("+447700900001", AccountConfig(system_id="a", password_hash="x"), ROUTE, "1-11 letters"),
        ("A", AccountConfig(system_id="a", password_hash="x", sender_ids=tuple("ABCDEF")), ROUTE, "at most 5"),
    ],
)
def test_sender_refused_with_rinvsrcadr(source: str, account: AccountConfig, route: RouteConfig, reason: str) -> None:
    with pytest.raises(InvalidSender, match=reason) as caught:
        resolve_sender(source, account, route)
    assert caught.value.command_status == CommandStatus.ESME_RINVSRCADR


@pytest.mark.parametrize(
    ("source", "route", "reason"),
    [
        ("OTHER", ROUTE, "not registered"),
        ("447700900002", ROUTE, "not registered"),
        ("#ACME", ROUTE, "does not allow '#'"),
        ("ACME", RouteConfig(name="uk", allowed_sender_ids=("447700900001",)), "does not carry"),
    ],
)
def test_well_formed_sender_not_allowed_is_0x405(source: str, route: RouteConfig, reason: str) -> None:
    with pytest.raises(SenderNotAllowed, match=reason) as caught:
        resolve_sender(source, ACCOUNT, route)
    assert caught.value.command_status == 0x405 == GatewayError.SENDER_NOT_ALLOWED.command_status


def test_account_without_registered_ids_may_send_any_well_formed_sender() -> None:
    account = AccountConfig(system_id="a", password_hash="x")
    assert resolve_sender("Shop24", account, ROUTE) == SenderAddress("Shop24", *ALPHANUMERIC)
    assert resolve_sender("", account, ROUTE) == NETWORK_SENDER


# --- content ---------------------------------------------------------------------------------------------------


def _rules(**overrides: object) -> ContentRules:
    return ContentRules.from_route(RouteConfig(name="r", **overrides))  # type: ignore[arg-type]


def _parts(prepared_text: str, encoding: Encoding, reserve: int = 0) -> int:
    split = segment_text(prepared_text, encoding=encoding, max_segments=255, reference=0, first_part_reserve=reserve)
    return len(split.parts)


def test_signature_is_prefixed_and_counted() -> None:
    prepared = prepare_text("a" * 150, _rules(signature="[Acme] "), promotional=False)
    assert prepared.text == "[Acme] " + "a" * 150
    assert (len(prepared.parts), prepared.first_part_reserve) == (1, 0)
    longer = prepare_text("a" * 154, _rules(signature="[Acme] "), promotional=False)
    assert len(longer.parts) == 2


def test_upstream_signature_reserves_the_first_part_china_route() -> None:
    """The service's China route: a 5-character operator signature leaves 62 characters in the first UCS-2 part."""
    rules = _rules(signature="【公司名】", signature_added_upstream=True, max_segments=8)
    prepared = prepare_text("你" * 62 + "好" * 67, rules, promotional=False)
    assert prepared.text == "你" * 62 + "好" * 67 and prepared.first_part_reserve == 5
    assert prepared.encoding is Encoding.UCS2 and len(prepared.parts) == 2
    split = segment_text(prepared.text, encoding=prepared.encoding, max_segments=8, reference=1, first_part_reserve=5)
    assert [part.text for part in split.parts] == ["你" * 62, "好" * 67]


def test_a_signature_outside_gsm_makes_the_message_ucs2() -> None:
    prepared = prepare_text("hello", _rules(signature="【公司】"), promotional=False, encoding=Encoding.GSM7)
    assert prepared.encoding is Encoding.UCS2 and prepared.text == "【公司】hello"


def test_suffix_only_when_it_fits_the_last_segment() -> None:
    rules = _rules(suffix=" -- Acme")
    assert prepare_text("a" * 152, rules, promotional=False).text == "a" * 152 + " -- Acme"
    assert prepare_text("a" * 153, rules, promotional=False).text == "a" * 153
    two = prepare_text("a" * 290, rules, promotional=False)
    assert two.text.endswith(" -- Acme") and len(two.parts) == 2
    assert prepare_text("a" * 300, rules, promotional=False).appended == ()


def test_suffix_outside_the_alphabet_is_left_out_not_switching_encoding() -> None:
    prepared = prepare_text("hello", _rules(suffix=" 退訂回T"), promotional=False, encoding=Encoding.GSM7)
    assert prepared.text == "hello" and prepared.encoding is Encoding.GSM7


def test_unsubscribe_statement_for_promotional_messages_only_and_first() -> None:
    rules = _rules(unsubscribe_statement=" EN/UN0800123", suffix=" Acme")
    assert prepare_text("Sale!", rules, promotional=False).text == "Sale! Acme"
    promo = prepare_text("Sale!", rules, promotional=True)
    assert promo.text == "Sale! EN/UN0800123 Acme"
    assert promo.appended == ("unsubscribe_statement", "suffix")
    tight = prepare_text("a" * 145, rules, promotional=True)  # room for the statement (13), not both
    assert tight.text == "a" * 145 + " EN/UN0800123" and tight.appended == ("unsubscribe_statement",)
    already = prepare_text("Sale! en/un0800123", rules, promotional=True)
    assert already.text == "Sale! en/un0800123 Acme"


@settings(max_examples=150)
@given(
    text=st.text(alphabet=st.sampled_from("ab €{\n你"), min_size=1, max_size=500),
    signature=st.sampled_from(["", "[Acme]", "【公司名】"]),
    upstream=st.booleans(),
    suffix=st.sampled_from(["", " -Acme", " 退訂"]),
    promotional=st.booleans(),
    reference=st.integers(0, 255),
)
def test_additions_never_add_a_segment_and_the_first_part_keeps_the_reserve(
    text: str, signature: str, upstream: bool, suffix: str, promotional: bool, reference: int
) -> None:
    rules = _rules(
        signature=signature,
        signature_added_upstream=upstream,
        suffix=suffix,
        unsubscribe_statement=" EN/UN123",
        max_segments=8,
    )
    try:
        prepared = prepare_text(text, rules, promotional=promotional, reference=reference)
    except TooManySegments:
        return
    base = text if upstream else signature + text
    assert prepared.text.startswith(base)
    assert len(prepared.parts) == _parts(base, prepared.encoding, prepared.first_part_reserve)
    split = segment_text(
        prepared.text,
        encoding=prepared.encoding,
        max_segments=8,
        reference=reference,
        first_part_reserve=prepared.first_part_reserve,
    )
    assert len(split.parts) == len(prepared.parts)
    # the one segmentation the message is sent with
    assert prepared.parts == tuple(NewSegment(split.data_coding, p.user_data, p.udh) for p in split.parts)
    if upstream and signature:
        # What the operator puts in front still fits the first part.
        together = segment_text(
            signature + (split.parts[0].text or ""), encoding=prepared.encoding, max_segments=1, reference=0
        )
        assert len(together.parts) == 1


def test_too_many_segments_is_0x406() -> None:
    with pytest.raises(TooManySegments) as caught:
        prepare_text("a" * 460, _rules(), promotional=False)
    assert caught.value.command_status == 0x406
    assert len(prepare_text("a" * 460, _rules(max_segments=4), promotional=False).parts) == 4


@pytest.mark.parametrize("max_segments", [0, 9])
def test_route_max_segments_is_1_to_8(max_segments: int) -> None:
    with pytest.raises(ValueError, match="max_segments"):
        _rules(max_segments=max_segments)


def test_line_breaks_crlf_counts_two_lf_normalises() -> None:
    text = "line\r\n" * 26 + "end"  # 6 * 26 + 3 = 159 characters with CR LF, 133 with LF
    kept = prepare_text(text, _rules(), promotional=False)
    assert kept.text == text and len(kept.parts) == 1
    assert len(prepare_text(text + "\r\n", _rules(), promotional=False).parts) == 2
    normalised = prepare_text(text + "\r\n", _rules(line_breaks="lf"), promotional=False)
    assert normalised.text == "line\n" * 26 + "end\n" and len(normalised.parts) == 1
    assert prepare_text("a\rb", _rules(line_breaks="lf"), promotional=False).text == "a\nb"
    with pytest.raises(ValueError, match="line_breaks"):
        _rules(line_breaks="cr")


# --- blocked keywords ------------------------------------------------------------------------------------------

KEYWORDS = """# blocked on the UK route
casino
賭場
free  money
re:(?i)\\bw[i1]n\\s+big\\b
re:\\d{4}-\\d{4}-\\d{4}-\\d{4}
"""


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Visit our CASINO tonight", "casino"),
        ("Casino!", "casino"),
        ("get FREE\nmoney now", "free money"),
        ("free-money!", "free money"),
        ("歡迎光臨賭場今晚", "賭場"),  # no spaces between Chinese words
        ("Play at 賭場88", "賭場"),
        ("w1n  big today", r"re:(?i)\bw[i1]n\s+big\b"),
        ("card 1234-5678-9012-3456", r"re:\d{4}-\d{4}-\d{4}-\d{4}"),
    ],
)
def test_blocked_content_is_0x402(text: str, found: str) -> None:
    keywords = parse_keywords(KEYWORDS)
    assert keywords.find(text) == found
    with pytest.raises(BlockedContent) as caught:
        prepare_text(text, _rules(), promotional=False, keywords=keywords)
    assert caught.value.command_status == 0x402 == GatewayError.BLOCKED_CONTENT.command_status


@pytest.mark.parametrize("text", ["casinos nearby", "occasional", "free moneyless", "winbig", "1234-5678"])
def test_exact_words_only(text: str) -> None:
    assert parse_keywords(KEYWORDS).find(text) is None


def test_bad_entries_name_the_line() -> None:
    with pytest.raises(ValueError, match=r"list.txt:2: bad regular expression"):
        parse_keywords("ok\nre:(unclosed\n", "list.txt")
    with pytest.raises(ValueError, match=r"list.txt:3: '\$\$\$' has no letter or digit"):
        parse_keywords("ok\n\n$$$\n", "list.txt")


def test_a_long_list_matches_by_word() -> None:
    keywords = parse_keywords("\n".join(f"spam{i}" for i in range(5000)) + "\nbuy now cheap\n")
    assert keywords.find("please do not SPAM4999 me") == "spam4999"
    assert keywords.find("Buy now, cheap!") == "buy now cheap"
    assert keywords.find("buy now") is None


def test_keyword_file_reloads_when_it_changes_and_keeps_the_last_good_list(tmp_path: Path) -> None:
    path = tmp_path / "blocked.txt"
    path.write_text("casino\n", encoding="utf-8")
    keywords = KeywordFile(str(path))
    assert keywords.rules().find("casino") == "casino"
    assert keywords.rules().find("lottery") is None
    path.write_text("casino\nlottery\n", encoding="utf-8")
    os.utime(path, ns=(1, 2_000_000_000))  # a new mtime even on coarse filesystem clocks
    assert keywords.rules().find("lottery") == "lottery"
    path.write_text("re:(broken\n", encoding="utf-8")
    os.utime(path, ns=(1, 3_000_000_000))
    assert keywords.rules().find("lottery") == "lottery"
    path.unlink()
    assert keywords.rules().find("casino") == "casino"


# --- recipients: DNC, consent, opt-out -------------------------------------------------------------------------


@dataclass
class FakeFacts:
    dnc: set[str] = field(default_factory=set)
    consent: set[tuple[str, str]] = field(default_factory=set)
    suppressed: set[tuple[str, str]] = field(default_factory=set)

    def is_on_dnc(self, number: str) -> bool:
        return number in self.dnc

    def has_consent(self, account: str, number: str) -> bool:
        return (account, number) in self.consent

    def is_suppressed(self, account: str, number: str) -> bool:
        return (account, number) in self.suppressed

    def dnc_among(self, numbers: Collection[str]) -> set[str]:
        return {number for number in numbers if number in self.dnc}

    def consented_among(self, account: str, numbers: Collection[str]) -> set[str]:
        return {number for number in numbers if (account, number) in self.consent}

    def suppressed_among(self, account: str, numbers: Collection[str]) -> set[str]:
        return {number for number in numbers if (account, number) in self.suppressed}

    def suppress(self, account: str, number: str) -> bool:
        new = (account, number) not in self.suppressed
        self.suppressed.add((account, number))
        return new

    def add_consent(self, account: str, number: str) -> bool:
        new = (account, number) not in self.consent
        self.consent.add((account, number))
        return new


def test_dnc_blocks_promotional_messages_unless_the_account_has_consent() -> None:
    facts = FakeFacts(dnc={"447700900123"}, consent={("other", "447700900123")})
    rejection = check_recipient(facts, "acme", "447700900123", promotional=True)
    assert isinstance(rejection, Rejection) and rejection.error_code == 801
    assert rejection.command_status == 0x401
    assert check_recipient(facts, "acme", "447700900123", promotional=False) is None
    assert check_recipient(facts, "other", "447700900123", promotional=True) is None
    assert check_recipient(facts, "acme", "447700900124", promotional=True) is None


def test_opted_out_recipient_gets_nothing_from_that_account() -> None:
    facts = FakeFacts(suppressed={("acme", "447700900123")}, consent={("acme", "447700900123")})
    for promotional in (True, False):
        rejection = check_recipient(facts, "acme", "447700900123", promotional=promotional)
        assert rejection is not None and rejection.error_code is GatewayError.OPTED_OUT
        assert int(rejection.error_code) == 803
    assert check_recipient(facts, "other", "447700900123", promotional=True) is None


_NUMBERS = st.sampled_from(["447700900001", "447700900002", "447700900003", "447700900004"])
_PAIRS = st.tuples(st.sampled_from(["acme", "other"]), _NUMBERS)


@settings(max_examples=200)
@given(
    st.sets(_NUMBERS),
    st.sets(_PAIRS),
    st.sets(_PAIRS),
    st.sampled_from(["acme", "other"]),
    st.lists(st.tuples(_NUMBERS, st.booleans()), max_size=12),
)
def test_batch_recipient_checks_equal_one_by_one(
    dnc: set[str],
    consent: set[tuple[str, str]],
    suppressed: set[tuple[str, str]],
    account: str,
    recipients: list[tuple[str, bool]],
) -> None:
    facts = FakeFacts(dnc, consent, suppressed)
    assert check_recipients(facts, account, recipients) == [
        check_recipient(facts, account, number, promotional=promotional) for number, promotional in recipients
    ]


def test_promotional_by_account_or_service_type() -> None:
    assert is_promotional(AccountConfig(system_id="a", password_hash="x", promotional=True), "", ("PROMO",))
    assert is_promotional(ACCOUNT, "promo", ("PROMO",))
    assert not is_promotional(ACCOUNT, "", ("PROMO",))
    assert not is_promotional(ACCOUNT, "CMT", ("PROMO",))


KEYWORDS_OPT_OUT = ("STOP", "UNSUBSCRIBE", "T", "退訂")


@pytest.mark.parametrize("text", ["STOP", "stop", "  Stop \n", "ＳＴＯＰ", "unsubscribe", "t", "退訂", " 退訂 "])
def test_opt_out_keywords_whole_message(text: str) -> None:
    assert is_opt_out(text, KEYWORDS_OPT_OUT)


@pytest.mark.parametrize("text", ["please stop", "STOPPED", "Thanks", "", "  ", "退訂了"])
def test_not_opt_out(text: str) -> None:
    assert not is_opt_out(text, KEYWORDS_OPT_OUT)


def test_opt_out_is_recorded_and_confirmed_once() -> None:
    facts = FakeFacts()
    assert record_opt_out(facts, "acme", "447700900123", "STOP", KEYWORDS_OPT_OUT)
    assert not record_opt_out(facts, "acme", "447700900123", "stop", KEYWORDS_OPT_OUT)
    assert not record_opt_out(facts, "acme", "447700900124", "hello", KEYWORDS_OPT_OUT)
    assert facts.suppressed == {("acme", "447700900123")}
    assert record_opt_out(facts, "acme", "447700900124", "ARRET", ("ARRET",))


# --- DNC CSV ---------------------------------------------------------------------------------------------------


def test_dnc_csv_normalises_and_reports_lines() -> None:
    lines = [
        "number,name\n",
        "+44 7700 900123,Alice\n",
        "\n",
        "# comment\n",
        "07700900123,Alice again\n",
        "not-a-number,Bob\n",
        '"0044 7700 900124",Carol\n',
        "123\n",
    ]
    with read_number_file(io.BytesIO("".join(lines).encode()), "44") as numbered:
        items = [item for _, item in numbered]
    assert [item for item in items if isinstance(item, str)] == ["447700900123", "447700900123", "447700900124"]
    invalid = [item for item in items if isinstance(item, InvalidLine)]
    assert [(i.line, i.raw) for i in invalid] == [(6, "not-a-number"), (8, "123")]
    assert "not a phone number" in invalid[0].reason


def test_dnc_csv_bad_country_code_fails_before_reading() -> None:
    with pytest.raises(InvalidNumber, match="country code"):
        with read_number_file(io.BytesIO(b"447700900123\n"), "4x"):
            pass



# --- the accept path and start-up checks -----------------------------------------------------------------------


def _config(tmp_path: Path, **route: object) -> Config:
    blocked = tmp_path / "blocked.txt"
    blocked.write_text("casino\n", encoding="utf-8")
    return config_from_mapping(
        {
            "accounts": [{"system_id": "acme", "password": "pw", "sender_ids": ["ACME"]}],
            "routes": [
                {"name": "uk", "prefixes": ["44"], "blocked_keywords_path": str(blocked), "suffix": " -Acme", **route}
            ],
            "policy": {"promotional_service_types": ["PROMO", "MKT"]},
        },
        "test.toml",
    )


def test_message_policy_accept_path(tmp_path: Path) -> None:
    config = _config(tmp_path, unsubscribe_statement=" STOP=T")
    policy = MessagePolicy(config)
    account, route = config.accounts[0], config.routes[0]
    keywords = policy.keywords(route)
    assert resolve_sender("", account, route) == SenderAddress("ACME", *ALPHANUMERIC)
    assert policy.is_promotional(account, "mkt") and not policy.is_promotional(account, "")

    def check(content: Text | Encoded, *, promotional: bool = False) -> Content:
        return prepare_content(content, policy.rules(route), flash=False, keywords=keywords, promotional=promotional,
                               reference=0)

    assert check(Text("Sale today"), promotional=True).text == "Sale today STOP=T -Acme"
    with pytest.raises(BlockedContent):
        check(Text("CASINO"))
    part = b"\x05\x00\x03\x01\x02\x01"  # a UDH: part 1 of 2
    with pytest.raises(BlockedContent):  # a part the ESME split: sent as is, keywords still checked
        check(Encoded(part + b"casino", 0, esm_class=0x40))
    assert check(Encoded(part + b"hello", 0, esm_class=0x40)).segments == (NewSegment(0, b"hello", part),)
    assert check(Encoded(b"casino", 4)).text == ""  # binary data: no words to block
    with pytest.raises(SenderNotAllowed):
        resolve_sender("EVIL", account, route)
    assert policy.is_opt_out(" Unsubscribe ")


@pytest.mark.parametrize(
    ("route", "key"),
    [
        ({"max_segments": 9}, "routes[0]"),
        ({"line_breaks": "cr"}, "routes[0]"),
        ({"sender_override": "+4477"}, "routes[0].sender_override"),
        ({"blocked_keywords_path": "/nonexistent/blocked.txt"}, "routes[0].blocked_keywords_path"),
        ({"signature": "x" * 61}, "routes[0]"),
        ({"prefixes": ["+44"]}, "routes[0].prefixes"),
        ({"prefixes": ["044"]}, "routes[0].prefixes"),
    ],
)
def test_policy_config_errors_name_the_key(tmp_path: Path, route: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_policy_config(_config(tmp_path, **route), "test.toml")
    assert caught.value.key == key


def test_policy_config_checks_accounts_and_policy(tmp_path: Path) -> None:
    config = _config(tmp_path)
    check_policy_config(config, "test.toml")
    no_region = replace(config, accounts=(replace(config.accounts[0], default_country_code="UK"),))
    with pytest.raises(ConfigError, match="'UK' is neither a calling code") as caught:
        check_policy_config(no_region, "test.toml")
    assert caught.value.key == "accounts[0].default_country_code"
    check_policy_config(replace(config, accounts=(replace(config.accounts[0], default_country_code="GB"),)), "t")
    for msisdn in ("4412345", "+999 1234567"):
        bad_msisdn = replace(config, modems=(ModemConfig(name="m1", port="/dev/null", msisdn=msisdn),))
        with pytest.raises(ConfigError, match=re.escape(msisdn)) as caught:
            check_policy_config(bad_msisdn, "test.toml")
        assert caught.value.key == "modems[0].msisdn"
    too_many = replace(config, accounts=(replace(config.accounts[0], sender_ids=tuple("ABCDEF")),))
    with pytest.raises(ConfigError, match="at most 5") as caught:
        check_policy_config(too_many, "test.toml")
    assert caught.value.key == "accounts[0].sender_ids"
    empty_keyword = replace(config, policy=replace(config.policy, opt_out_keywords=("STOP", " ")))
    with pytest.raises(ConfigError, match="empty keyword"):
        check_policy_config(empty_keyword, "test.toml")
    first = replace(config.accounts[0], keywords=("Pizza",))
    shared = replace(config, accounts=(first, replace(first, system_id="other", keywords=("PIZZA",))))
    with pytest.raises(ConfigError, match="already belongs to") as caught:
        check_policy_config(shared, "test.toml")
    assert caught.value.key == "accounts[1].keywords"
    with pytest.raises(ConfigError, match="not one word"):
        check_policy_config(replace(config, accounts=(replace(first, keywords=("two words",)),)), "test.toml")


@settings(max_examples=150)
@given(
    text=st.text(max_size=400),
    requested=st.sampled_from([None, Encoding.GSM7, Encoding.UCS2]),
    signature=st.text(max_size=12),
    upstream=st.booleans(),
    suffix=st.text(max_size=20),
    line_breaks=st.sampled_from(["crlf", "lf"]),
    max_segments=st.integers(1, 8),
)
def test_any_text_is_prepared_or_refused_with_its_code(
    text: str,
    requested: Encoding | None,
    signature: str,
    upstream: bool,
    suffix: str,
    line_breaks: str,
    max_segments: int,
) -> None:
    rules = _rules(
        signature=signature,
        signature_added_upstream=upstream,
        suffix=suffix,
        line_breaks=line_breaks,
        max_segments=max_segments,
    )
    try:
        prepared = prepare_text(text, rules, promotional=False, encoding=requested)
    except TooManySegments as exc:
        assert exc.command_status == 0x406 and exc.needed > max_segments
        return
    assert 1 <= len(prepared.parts) <= max_segments
    assert _parts(prepared.text, prepared.encoding, prepared.first_part_reserve) == len(prepared.parts)
    if requested is not None and prepared.encoding is not requested:
        assert requested is Encoding.GSM7 and prepared.encoding is Encoding.UCS2


# --- sub-accounts ----------------------------------------------------------------------------------------------


def _family() -> Config:
    return Config(
        accounts=(
            AccountConfig(system_id="acme", password_hash="x"),
            AccountConfig(system_id="acme-sales", password_hash="x", parent="acme"),
            AccountConfig(system_id="acme-support", password_hash="x", parent="acme"),
            AccountConfig(system_id="other", password_hash="x"),
        )
    )


def test_sub_accounts_are_invisible_to_each_other_and_to_their_parent_only_visible_downwards() -> None:
    config = _family()
    assert visible_accounts(config, "acme") == {"acme", "acme-sales", "acme-support"}
    assert visible_accounts(config, "acme-sales") == {"acme-sales"}
    assert visible_accounts(config, "other") == {"other"}


def test_transfers_only_between_a_parent_and_its_sub_accounts() -> None:
    config = _family()
    check_transfer(config, "acme", "acme-sales", 5_000_000)
    check_transfer(config, "acme-support", "acme", 1)
    for source, target, amount, reason in [
        ("acme-sales", "acme-support", 1, "not a parent and its sub-account"),
        ("other", "acme-sales", 1, "not a parent and its sub-account"),
        ("acme", "acme-sales", 0, "positive amount"),
        ("acme", "ghost", 1, "no account 'ghost'"),
    ]:
        with pytest.raises(ValueError, match=reason):
            check_transfer(config, source, target, amount)


@pytest.mark.parametrize(
    ("parent_of_sales", "parent_of_support", "problem"),
    [("ghost", "acme", "no other account 'ghost'"), ("acme-sales", "acme", "no other account"),
     ("acme", "acme-sales", "is itself a sub-account")],
)  # fmt: skip
def test_parent_must_be_another_top_level_account(parent_of_sales: str, parent_of_support: str, problem: str) -> None:
    config = _family()
    sales, support = config.accounts[1], config.accounts[2]
    broken = replace(
        config,
        accounts=(
            config.accounts[0],
            replace(sales, parent=parent_of_sales),
            replace(support, parent=parent_of_support),
            config.accounts[3],
        ),
    )
    with pytest.raises(ConfigError, match=problem):
        check_policy_config(broken, "test.toml")


def test_example_config_passes_the_policy_checks() -> None:
    example = load_config(Path(__file__).resolve().parents[2] / "smsgw.example.toml")
    check_policy_config(example, "smsgw.example.toml")
    assert visible_accounts(example, "acme") == {"acme", "alerts"}


def test_a_message_the_esme_split_is_held_to_the_routes_segment_limit() -> None:
    route = RouteConfig(name="uk", max_segments=3)
    check_esme_parts(3, route.max_segments)
    with pytest.raises(TooManySegments) as caught:
        check_esme_parts(4, route.max_segments)
    assert caught.value.command_status == GatewayError.TOO_MANY_SEGMENTS.command_status
