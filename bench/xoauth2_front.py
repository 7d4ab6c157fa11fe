"""The XOAUTH2 side of bench/notices.py --oauth, in a process of its own: the demo identity provider, and a front
on 127.0.0.1 that offers AUTH XOAUTH2, checks the access token with that provider, then passes the session through
to Postfix's smtp-sink (which cannot check tokens itself).

    python bench/xoauth2_front.py SINK_PORT FRONT_PORT OAUTH_PORT REDIRECT_URL

Prints "ready" once both listen; runs until terminated.
"""

import asyncio
import base64
import binascii
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "destiny_mail.settings")

from settings_app.mail.localserver import demo_key_pair  # noqa: E402
from settings_app.mail.localserver.oauth import (  # noqa: E402
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    LocalAuthorizationServer,
)
from settings_app.mail.localserver.oauth_http import oauth_server  # noqa: E402

REFUSED = b"334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiQmVhcmVyIn0=\r\n"


def accepted(line: bytes, authority: LocalAuthorizationServer) -> bool:
    try:
        blob = base64.b64decode(line.split()[2], validate=True).decode()
        fields = dict(part.split("=", 1) for part in blob.split("\x01") if part)
        return authority.accepts(fields["auth"].removeprefix("Bearer "), fields["user"])
    except (IndexError, ValueError, KeyError, binascii.Error):
        return False


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def session(client_r, client_w, sink_port: int, authority: LocalAuthorizationServer) -> None:
    sink_r, sink_w = await asyncio.open_connection("127.0.0.1", sink_port)
    client_w.write(await sink_r.readline())
    while line := await client_r.readline():
        if line.upper().startswith(b"AUTH XOAUTH2 "):
            if accepted(line, authority):
                client_w.write(b"235 2.7.0 Accepted\r\n")
                break
            client_w.write(REFUSED)
            await client_r.readline()
            client_w.write(b"535 5.7.8 Token not accepted\r\n")
            continue
        sink_w.write(line)
        while reply := await sink_r.readline():
            client_w.write(reply.replace(b"250-AUTH PLAIN LOGIN", b"250-AUTH PLAIN LOGIN XOAUTH2"))
            if reply[3:4] != b"-":
                break
    else:
        sink_w.close()
        client_w.close()
        return
    await asyncio.gather(pipe(client_r, sink_w), pipe(sink_r, client_w), return_exceptions=True)


async def main() -> None:
    sink_port, front_port, oauth_port, redirect_url = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    _, key_pair = demo_key_pair(ROOT / "var" / "demo-ca")
    running = oauth_server(key_pair, port=oauth_port)
    running.authority.register(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, redirect_url)
    server = await asyncio.start_server(
        lambda r, w: session(r, w, sink_port, running.authority), "127.0.0.1", front_port
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
