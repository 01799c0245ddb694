"""python-gsmmodem-new's GsmModem against a modem port, as a program: `python gsmmodem_client.py PORT`.

Connects, sends one message with a delivery report, one multipart message, waits for the network's auto-replies
(both parts of the long one) and prints a JSON summary on stdout. Run by test_virtual_interop.py in a subprocess,
so a library that hangs is killed by the subprocess timeout and leaves no thread behind.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from gsmmodem.modem import GsmModem, SentSms

AUTO_REPLY_NUMBER = "447700900999"
SHORT = "hi gsmmodem"
LONG = "gsmmodem multipart " + "0123456789" * 16  # 179 characters: two parts each way
WAIT_S = 20.0


def main(port: str) -> dict[str, Any]:
    received: list[str] = []
    lock = threading.Lock()
    replies_in = threading.Event()

    def on_sms(sms: Any) -> None:
        with lock:
            received.append(sms.text)
            # "RE: hi gsmmodem" plus the two parts of "RE: <LONG>" (python-gsmmodem does not join parts)
            if len(received) >= 3:
                replies_in.set()

    modem = GsmModem(port, 115200, smsReceivedCallbackFunc=on_sms)
    try:
        modem.connect()
        sent = modem.sendSms(AUTO_REPLY_NUMBER, SHORT, waitForDeliveryReport=True, deliveryTimeout=WAIT_S)
        long_sent = modem.sendSms(AUTO_REPLY_NUMBER, LONG)
        replies_in.wait(WAIT_S)
        with lock:
            texts = list(received)
        return {
            "imei": modem.imei,
            "reference": sent.reference,
            "delivered": sent.status == SentSms.DELIVERED,
            "long_reference": long_sent.reference,
            "received": texts,
        }
    finally:
        modem.close()


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
