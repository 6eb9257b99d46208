"""The IMAP bounce poller against a small real IMAP4rev1 server on loopback (plain and TLS)."""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from app import tokens
from app.bounces.imap import Mailbox, poll_once
from app.models import Bounce
from tests.certs import self_signed
from tests.subscribers import factory

FIXTURES = Path(__file__).parent / "fixtures"
ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"|(\S+)')


class IMAPServer:
    """Just enough IMAP4rev1 for a poller: LOGIN, SELECT, UID SEARCH/FETCH/STORE, LOGOUT."""

    def __init__(self, messages: list[bytes], user: str = "bounces", password: str = 'p@ss "w"'):  # noqa: S107
        self.messages = [{"uid": i + 1, "data": m, "flags": set()} for i, m in enumerate(messages)]
        self.user, self.password = user.encode(), password.encode()
        self.commands: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> int:
        self.server = await asyncio.start_server(self.session, "127.0.0.1", 0, ssl=ssl_context)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK IMAP4rev1 test server ready\r\n")
        authed = False
        try:
            for _ in range(10_000):
                line = await asyncio.wait_for(reader.readline(), 10)
                if not line:
                    return
                tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
                args = [m[0].replace(b'\\"', b'"').replace(b"\\\\", b"\\") if m[0] or m[1] == b""
                        else m[1] for m in ARG.findall(rest)]  # fmt: skip
                command = args[0].upper()
                self.commands.append(
                    command + (b" " + args[1].upper() if command == b"UID" else b"")
                )
                ok = b"OK"
                if command == b"CAPABILITY":
                    writer.write(b"* CAPABILITY IMAP4rev1\r\n")
                elif command == b"LOGIN":
                    authed = args[1:3] == [self.user, self.password]
                    ok = b"OK" if authed else b"NO"
                elif command == b"SELECT" and authed:
                    writer.write(b"* %d EXISTS\r\n* 0 RECENT\r\n" % len(self.messages))
                elif command == b"UID" and authed:
                    self.uid(args[1].upper(), args[2:], writer)
                elif command == b"LOGOUT":
                    writer.write(b"* BYE\r\n" + tag + b" OK bye\r\n")
                    await writer.drain()
                    return
                elif command != b"NOOP":
                    ok = b"BAD"
                writer.write(tag + b" " + ok + b" done\r\n")
                await writer.drain()
        finally:
            writer.close()

    def uid(self, sub: bytes, args: list[bytes], writer: asyncio.StreamWriter) -> None:
        if sub == b"SEARCH":
            unseen = [str(m["uid"]).encode() for m in self.messages if "\\Seen" not in m["flags"]]
            writer.write(b"* SEARCH " + b" ".join(unseen) + b"\r\n")
            return
        seq = [m for m in self.messages if str(m["uid"]).encode() == args[0]]
        for n, m in enumerate(seq, 1):
            if sub == b"FETCH":  # BODY.PEEK: reading sets no flag
                data = m["data"]
                writer.write(b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (n, m["uid"], len(data)))
                writer.write(data + b")\r\n")
            elif sub == b"STORE" and b"\\Seen" in b" ".join(args):
                m["flags"].add("\\Seen")
                writer.write(b"* %d FETCH (UID %d FLAGS (\\Seen))\r\n" % (n, m["uid"]))


def verp_dsn(app, delivery_id: int) -> bytes:
    token = tokens.make(app.state.settings.secret_key_value, "verp", delivery_id)
    raw = (FIXTURES / "postfix_5.1.1_unknown_user.eml").read_bytes()
    return raw.replace(b"tok-unknown.AbC_1=", token.encode())


async def recorded(app) -> list[Bounce]:
    async with app.state.sessionmaker() as session:
        return list((await session.execute(select(Bounce).order_by(Bounce.id))).scalars())


async def test_poller_records_bounces_and_marks_them_seen(client) -> None:
    world = await factory.build(client.app)
    messages = [
        verp_dsn(client.app, world.deliveries["ann@example.org"]),
        (FIXTURES / "autoreply.eml").read_bytes(),
        (FIXTURES / "postfix_5.2.2_mailbox_full.eml").read_bytes(),
    ]
    server = IMAPServer(messages)
    port = await server.start()
    url = f"imap://bounces:p%40ss%20%22w%22@127.0.0.1:{port}/INBOX"
    kw = {"settings": client.app.state.settings, "sessionmaker": client.app.state.sessionmaker}
    try:
        result = await poll_once(url=url, **kw)
        assert (result.messages, result.not_bounces) == (3, 1) and result.bounces >= 2
        assert all("\\Seen" in m["flags"] for m in server.messages)
        assert len(server.messages) == 3  # nothing deleted
        assert b"UID STORE" in server.commands and b"EXPUNGE" not in server.commands
        found = await recorded(client.app)
        assert {b.source for b in found} == {"imap"}
        assert any(b.delivery_id == world.deliveries["ann@example.org"] for b in found)
        sub = await factory.subscriber(client.app, world.subscribers["ann@example.org"])
        assert sub.blocklist_reason == "hard_bounce"
        # Nothing unseen is left; a later poll does nothing.
        again = await poll_once(url=url, **kw)
        assert again.messages == 0 and len(await recorded(client.app)) == len(found)
        # The same bounce arriving again (a re-flagged message) is still one bounce.
        for m in server.messages:
            m["flags"].clear()
        await poll_once(url=url, **kw)
        assert len(await recorded(client.app)) == len(found)
    finally:
        await server.stop()


async def test_wrong_password_records_nothing(client) -> None:
    server = IMAPServer([(FIXTURES / "postfix_5.1.1_remote.eml").read_bytes()])
    port = await server.start()
    kw = {"settings": client.app.state.settings, "sessionmaker": client.app.state.sessionmaker}
    try:
        with pytest.raises(Exception, match="(?i)login|done"):
            await poll_once(url=f"imap://bounces:nope@127.0.0.1:{port}/INBOX", **kw)
        assert await recorded(client.app) == []
        assert server.messages[0]["flags"] == set()
    finally:
        await server.stop()


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(key, "127.0.0.1", days=1, ip="127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_poller_over_imaps(client, tmp_path: Path) -> None:
    world = await factory.build(client.app)
    server_ctx, client_ctx = _self_signed(tmp_path)
    server = IMAPServer([verp_dsn(client.app, world.deliveries["bob@example.org"])], password="pw")
    port = await server.start(ssl_context=server_ctx)
    try:
        result = await poll_once(
            settings=client.app.state.settings,
            sessionmaker=client.app.state.sessionmaker,
            url=f"imaps://bounces:pw@127.0.0.1:{port}",
            ssl_context=client_ctx,
        )
        assert result.bounces == 1
        [bounce] = await recorded(client.app)
        assert bounce.delivery_id == world.deliveries["bob@example.org"]
    finally:
        await server.stop()


def test_mailbox_url() -> None:
    box = Mailbox.from_url("imaps://me%40example.org:s%2Fcret@mail.example.org/Bounces")
    assert (box.host, box.port, box.user, box.password, box.folder, box.tls) == (
        "mail.example.org", 993, "me@example.org", "s/cret", "Bounces", True,
    )  # fmt: skip
    with pytest.raises(ValueError):
        Mailbox.from_url("https://example.org")


async def test_the_command_polls_once(client) -> None:
    world = await factory.build(client.app)
    server = IMAPServer([verp_dsn(client.app, world.deliveries["ann@example.org"])], password="pw")
    port = await server.start()
    settings = client.app.state.settings
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": settings.database_url,
        "TIDINGS_SECRET_KEY": settings.secret_key_value,
        "TIDINGS_VAR_DIR": str(settings.var_dir),
        "TIDINGS_IMAP_URL": f"imap://bounces:pw@127.0.0.1:{port}/INBOX",
    }
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from app.cli import main; main()", "bounces", "--once", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, output.decode()
        [bounce] = await recorded(client.app)
        assert bounce.delivery_id == world.deliveries["ann@example.org"]
        assert b"pw@" not in output  # the password never reaches the log
    finally:
        await server.stop()
