"""A real SMTP server for the tests that keeps every message it receives.

Usage: python smtp_sink.py FOLDER [--host 127.0.0.1] [--port 0]

Listens with aiosmtpd (port 0: a free port) and prints `listening on PORT` (the real
port) once it accepts connections. Each message is stored in FOLDER as `NNNNNN.eml` (the
bytes as received) and `NNNNNN.json`: {"from", "to": [recipients], "subject", "text",
"html"}, with the bodies decoded (quoted-printable, base64, charsets). The JSON file
appears whole (written aside, then renamed), after the .eml. Stops on SIGTERM or SIGINT.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import sys

from aiosmtpd.smtp import SMTP


def body_of(message, subtype):
    """The decoded text of the message's text/SUBTYPE part, or None."""
    if message.is_multipart():
        part = message.get_body(preferencelist=(subtype,))
        return part.get_content() if part is not None else None
    if message.get_content_type() == f"text/{subtype}":
        return message.get_content()
    return None


class Sink:
    def __init__(self, folder):
        self.folder = folder
        self.count = len([name for name in os.listdir(folder) if name.endswith(".eml")])

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        stem = os.path.join(self.folder, f"{self.count:06d}")
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        with open(stem + ".eml", "wb") as out:
            out.write(raw)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        record = {
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "header_to": str(message.get("To", "")),
            "subject": str(message.get("Subject", "")),
            "text": body_of(message, "plain"),
            "html": body_of(message, "html"),
        }
        with open(stem + ".json.tmp", "w", encoding="utf-8") as out:
            json.dump(record, out, ensure_ascii=False)
        os.replace(stem + ".json.tmp", stem + ".json")
        return "250 Message accepted for delivery"


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.folder, exist_ok=True)

    handler = Sink(args.folder)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="caucus-test-sink", enable_SMTPUTF8=True),
        host=args.host,
        port=args.port,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"listening on {port}", flush=True)

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
