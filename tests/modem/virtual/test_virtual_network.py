"""Every row of DESIGN.md's virtual network table, on the Trio clock (MockClock: validity periods pass at once)."""

from __future__ import annotations

from datetime import timedelta

import trio
import trio.testing

from smsgw.config import VirtualNetworkConfig
from smsgw.modem.virtual.network import Mt, MtResult, SubmitAccepted, SubmitRejected, VirtualNetwork, serve_network
from smsgw.pdu.segmentation import segment_text
from smsgw.pdu.gsm7 import encode_gsm7
from smsgw.pdu.tpdu import Address, Dcs, SmsDeliver, SmsStatusReport, SmsSubmit, TpStatus
from smsgw.pdu.udh import Concatenation, Udh

SENDER = "447700900001"
CONFIG = VirtualNetworkConfig(delivery_delay_s=2.0, retry_interval_s=60.0, default_validity_s=3600.0)


class Phone:
    """A handset that records what the network hands it, and can be full."""

    def __init__(self, full: bool = False) -> None:
        self.received: list[tuple[float, Mt]] = []
        self.full = full

    def receive_mt(self, now: float, message: Mt) -> MtResult:
        if self.full:
            return MtResult.MEMORY_FULL
        self.received.append((now, message))
        return MtResult.ACCEPTED

    def reports(self) -> list[SmsStatusReport]:
        return [m for _, m in self.received if isinstance(m, SmsStatusReport)]

    def delivers(self) -> list[SmsDeliver]:
        return [m for _, m in self.received if isinstance(m, SmsDeliver)]


def submit(to: str, text: str = "hello", *, srr: bool = True, tp_mr: int = 9, **fields: object) -> SmsSubmit:
    return SmsSubmit(
        destination=Address.international(to),
        user_data=encode_gsm7(text),
        status_report_request=srr,
        tp_mr=tp_mr,
        **fields,  # type: ignore[arg-type]
    )


async def start(nursery: trio.Nursery, config: VirtualNetworkConfig = CONFIG) -> tuple[VirtualNetwork, Phone]:
    network = VirtualNetwork(config, now=trio.current_time())
    await nursery.start(serve_network, network)
    phone = Phone()
    network.attach(trio.current_time(), SENDER, phone)
    return network, phone


async def test_modem_to_modem_delivered_after_the_delay_with_report(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        network, sender = await start(nursery)
        receiver = Phone()
        network.attach(trio.current_time(), "447700900002", receiver)
        t0 = trio.current_time()
        assert isinstance(network.submit(t0, SENDER, submit("447700900002", "loop")), SubmitAccepted)
        await trio.sleep(1.9)
        assert receiver.received == []
        await trio.sleep(0.2)
        (got,) = receiver.delivers()
        assert (got.text, got.originator) == ("loop", Address.international(SENDER))
        (report,) = sender.reports()
        assert (report.tp_mr, report.tp_st, report.recipient.number) == (9, TpStatus.RECEIVED_BY_SME, "447700900002")
        assert report.discharge_time - report.scts == timedelta(seconds=2)
        nursery.cancel_scope.cancel()


async def test_no_status_report_without_srr(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        network, sender = await start(nursery)
        network.submit(trio.current_time(), SENDER, submit("447700900500", srr=False))
        network.submit(trio.current_time(), SENDER, submit("447700922001", srr=False))
        await trio.sleep(3600)
        assert sender.received == []
        nursery.cancel_scope.cancel()


async def test_other_numbers_delivered_and_national_form_accepted(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        network, sender = await start(nursery)
        national = SmsSubmit(destination=Address.national("07700900500"), user_data=b"x", status_report_request=True)
        result = network.submit(trio.current_time(), SENDER, national)
        assert isinstance(result, SubmitAccepted) and result.destination == "447700900500"
        await trio.sleep(2.1)
        assert [r.tp_st for r in sender.reports()] == [TpStatus.RECEIVED_BY_SME]
        nursery.cancel_scope.cancel()


async def test_auto_reply_answers_re_text_to_the_sender(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        network, sender = await start(nursery)
        network.submit(trio.current_time(), SENDER, submit("447700900999", "ping"))
        await trio.sleep(4.1)
        (reply,) = sender.delivers()
        assert reply.text == "RE: ping" and reply.originator.number == "447700900999"
        assert [r.tp_st for r in sender.reports()] == [TpStatus.RECEIVED_BY_SME]
        nursery.cancel_scope.cancel()


async def test_auto_reply_reassembles_a_concatenated_message(autojump_clock: trio.testing.MockClock) -> None:
    text = "0123456789" * 20
    parts = segment_text(text, reference=7).parts
    assert len(parts) == 2
    async with trio.open_nursery() as nursery:
        network, sender = await start(nursery)
        for part in reversed(parts):
            sms = SmsSubmit(destination=Address.international("447700900999"), user_data=part.user_data, udh=part.udh)
            network.submit(trio.current_time(), SENDER, sms)
        await trio.sleep(5.1 + CONFIG.mt_interval_s)  # the reply's second part comes one radio transaction later
        replies = sender.delivers()
        assert len(replies) == 2
        assert "".join(r.text or "" for r in replies) == "RE: " + text
        nursery.cancel_scope.cancel()


async def test_auto_reply_joins_an_escape_that_a_sender_split_across_parts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Some senders (smpplib among them) cut the septets at 153 wherever that falls: here between the escape and
    # the '€' it introduces, so the parts only make sense joined before decoding.
    septets = encode_gsm7("x" * 152 + "€" + "y" * 10)
    cuts = (septets[:153], septets[153:])
    assert cuts[0].endswith(b"\x1b")
    async with trio.open_nursery() as nursery:
        network, sender = await start(nursery)
        for sequence, user_data in enumerate(cuts, 1):
            udh = Udh((Concatenation(reference=3, total=2, sequence=sequence),)).to_bytes()
            sms = SmsSubmit(destination=Address.international("447700900999"), user_data=user_data, udh=udh)
            network.submit(trio.current_time(), SENDER, sms)
        await trio.sleep(5.1 + CONFIG.mt_interval_s)
        assert "".join(r.text or "" for r in sender.delivers()) == "RE: " + "x" * 152 + "€" + "y" * 10
        nursery.cancel_scope.cancel()


async def test_switched_off_expires_at_the_end_of_validity(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        network, sender = await start(nursery)
        t0 = trio.current_time()
        network.submit(t0, SENDER, submit("447700911000", validity=timedelta(minutes=30)))
        await trio.sleep(30 * 60 - 1)
        assert sender.received == []
        await trio.sleep(2.1)
        (report,) = sender.reports()
        assert report.tp_st == TpStatus.VALIDITY_PERIOD_EXPIRED
        assert report.discharge_time - report.scts == timedelta(minutes=30)
        nursery.cancel_scope.cancel()


async def test_switched_off_without_tp_vp_uses_the_network_default(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        network, sender = await start(nursery)
        network.submit(trio.current_time(), SENDER, submit("447700911999"))
        await trio.sleep(CONFIG.default_validity_s - 1)
        assert sender.received == []
        await trio.sleep(2.1)
        assert [r.tp_st for r in sender.reports()] == [TpStatus.VALIDITY_PERIOD_EXPIRED]
        nursery.cancel_scope.cancel()


async def test_unknown_subscriber_fails_permanently(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        network, sender = await start(nursery)
        network.submit(trio.current_time(), SENDER, submit("447700922999"))
        await trio.sleep(2.1)
        (report,) = sender.reports()
        assert report.tp_st == TpStatus.INCOMPATIBLE_DESTINATION
        nursery.cancel_scope.cancel()


async def test_memory_full_first_then_delivered_on_retry(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        network, sender = await start(nursery)
        network.submit(trio.current_time(), SENDER, submit("447700933000"))
        await trio.sleep(2 + 59)
        assert sender.received == []  # first attempt refused (memory full), no report for a temporary error
        await trio.sleep(2.1)
        (report,) = sender.reports()
        assert report.tp_st == TpStatus.RECEIVED_BY_SME
        assert report.discharge_time - report.scts == timedelta(seconds=62)
        nursery.cancel_scope.cancel()


async def test_full_modem_gets_its_sms_when_memory_is_available(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        network, sender = await start(nursery)
        full = Phone(full=True)
        network.attach(trio.current_time(), "447700900002", full)
        network.submit(trio.current_time(), SENDER, submit("447700900002", "wait"))
        await trio.sleep(10)
        full.full = False
        network.memory_available(trio.current_time(), "447700900002")  # RP-SMMA: before the next retry
        await trio.sleep(0.001)
        assert [d.text for d in full.delivers()] == ["wait"]
        nursery.cancel_scope.cancel()


async def test_detached_modem_gets_its_sms_when_it_attaches_again(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        network, sender = await start(nursery)
        phone = Phone()
        network.attach(trio.current_time(), "447700900002", phone)
        network.detach(trio.current_time(), "447700900002")
        assert not network.is_attached("447700900002")
        network.submit(trio.current_time(), SENDER, submit("447700900002", "later"))
        await trio.sleep(600)
        assert sender.reports() == [] and phone.received == []  # a known subscriber, switched off: retried
        network.attach(trio.current_time(), "447700900002", phone)
        await trio.sleep(0.001)
        assert [d.text for d in phone.delivers()] == ["later"]
        assert [r.tp_st for r in sender.reports()] == [TpStatus.RECEIVED_BY_SME]
        nursery.cancel_scope.cancel()


async def test_invalid_destination_rejected_at_submit(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        network, _ = await start(nursery)
        bad = SmsSubmit(destination=Address.alphanumeric("Shop"), user_data=b"x", dcs=Dcs.gsm7())
        result = network.submit(trio.current_time(), SENDER, bad)
        assert isinstance(result, SubmitRejected) and result.rp_cause == 1
        nursery.cancel_scope.cancel()


async def test_a_handset_gets_one_mt_per_radio_transaction(autojump_clock: trio.testing.MockClock) -> None:
    config = VirtualNetworkConfig(delivery_delay_s=2.0, mt_interval_s=3.0)
    async with trio.open_nursery() as nursery:
        network, sender = await start(nursery, config)
        t0 = trio.current_time()
        for text in ("one", "two", "three"):  # due at the same instant
            network.submit(t0, "447700900777", submit(SENDER, text=text, srr=False))
        await trio.sleep(20)
        assert [round(when - t0, 3) for when, _ in sender.received] == [2.0, 5.0, 8.0]
        assert [m.text for m in sender.delivers()] == ["one", "two", "three"]
        nursery.cancel_scope.cancel()
