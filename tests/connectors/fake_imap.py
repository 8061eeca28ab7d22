"""A small IMAP4rev1 server on 127.0.0.1 for the poller's tests.

It speaks, over a real socket, the commands ``imaplib`` sends for polling: CAPABILITY,
LOGIN, SELECT, UID SEARCH (UNSEEN or ALL), UID FETCH (BODY.PEEK[], RFC822, FLAGS),
UID STORE (+FLAGS / -FLAGS), NOOP, CLOSE and LOGOUT (RFC 3501). One mailbox, INBOX.
"""

from __future__ import annotations

import re
import socketserver
import threading
from dataclasses import dataclass, field

_TOKENS = re.compile(rb'\((?:[^()]|\([^()]*\))*\)|"(?:[^"\\]|\\.)*"|\S+')


@dataclass
class StoredMail:
    uid: int
    raw: bytes
    flags: set[str] = field(default_factory=set)


class FakeIMAP:
    """``with FakeIMAP(user, password) as server: server.add(raw)``; ``server.port``."""

    def __init__(self, user: str, password: str):
        self.user, self.password = user, password
        self.mails: list[StoredMail] = []
        self.commands: list[str] = []
        self._next_uid = 101
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                fake._session(self.rfile, self.wfile)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def add(self, raw: bytes, *, seen: bool = False) -> int:
        mail = StoredMail(uid=self._next_uid, raw=raw, flags={"\\Seen"} if seen else set())
        self._next_uid += 1
        self.mails.append(mail)
        return mail.uid

    def unseen(self) -> list[int]:
        return [m.uid for m in self.mails if "\\Seen" not in m.flags]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    # --- protocol ---------------------------------------------------------------------

    def _session(self, rfile, wfile) -> None:
        def send(line: bytes) -> None:
            wfile.write(line + b"\r\n")

        send(b"* OK Fake IMAP4rev1 server ready")
        authenticated = selected = False
        while True:
            line = rfile.readline()
            if not line:
                return
            tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
            words = _TOKENS.findall(rest)
            if not words:
                send(tag + b" BAD empty command")
                continue
            command = words[0].upper().decode()
            args = words[1:]
            if command == "UID" and args:
                command, args = "UID " + args[0].upper().decode(), args[1:]
            self.commands.append(command)
            if command == "CAPABILITY":
                send(b"* CAPABILITY IMAP4rev1")
                send(tag + b" OK CAPABILITY completed")
            elif command == "NOOP":
                send(tag + b" OK NOOP completed")
            elif command == "LOGOUT":
                send(b"* BYE logging out")
                send(tag + b" OK LOGOUT completed")
                return
            elif command == "LOGIN":
                user, password = (_unquote(a) for a in (args + [b"", b""])[:2])
                authenticated = user == self.user and password == self.password
                send(
                    tag
                    + (b" OK LOGIN completed" if authenticated else b" NO [AUTHENTICATIONFAILED] bad login")
                )
            elif not authenticated:
                send(tag + b" BAD log in first")
            elif command == "SELECT":
                if _unquote(args[0]).upper() != "INBOX":
                    send(tag + b" NO [NONEXISTENT] no such mailbox")
                    continue
                selected = True
                send(b"* %d EXISTS" % len(self.mails))
                send(b"* 0 RECENT")
                send(b"* OK [UIDVALIDITY 1] UIDs valid")
                send(b"* OK [UIDNEXT %d] next uid" % self._next_uid)
                send(b"* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)")
                send(tag + b" OK [READ-WRITE] SELECT completed")
            elif not selected:
                send(tag + b" BAD select a mailbox first")
            elif command == "CLOSE":
                selected = False
                send(tag + b" OK CLOSE completed")
            elif command == "UID SEARCH":
                criterion = b" ".join(args).upper()
                uids = self.unseen() if criterion == b"UNSEEN" else [m.uid for m in self.mails]
                send(b"* SEARCH" + b"".join(b" %d" % uid for uid in uids))
                send(tag + b" OK SEARCH completed")
            elif command == "UID FETCH":
                for number, mail in self._matching(args[0]):
                    items = args[1].upper() if len(args) > 1 else b""
                    if b"BODY.PEEK[]" in items or b"RFC822" in items:
                        name = b"RFC822" if b"RFC822" in items else b"BODY[]"
                        if name == b"RFC822":
                            mail.flags.add("\\Seen")  # a non-peek fetch marks the message read
                        wfile.write(
                            b"* %d FETCH (UID %d %s {%d}\r\n" % (number, mail.uid, name, len(mail.raw))
                        )
                        wfile.write(mail.raw)
                        send(b")")
                    else:
                        send(b"* %d FETCH (UID %d FLAGS (%s))" % (number, mail.uid, _flags(mail)))
                send(tag + b" OK FETCH completed")
            elif command == "UID STORE":
                mode, flags = args[1].upper(), {f.decode() for f in re.findall(rb"\\\w+", args[2])}
                for number, mail in self._matching(args[0]):
                    if mode.startswith(b"+"):
                        mail.flags |= flags
                    elif mode.startswith(b"-"):
                        mail.flags -= flags
                    send(b"* %d FETCH (UID %d FLAGS (%s))" % (number, mail.uid, _flags(mail)))
                send(tag + b" OK STORE completed")
            else:
                send(tag + b" BAD unknown command " + command.encode())

    def _matching(self, uid_set: bytes):
        """(sequence number, mail) for a UID set such as ``101``, ``101:103,107`` or ``105:*``."""
        top = max((m.uid for m in self.mails), default=0)
        wanted: set[int] = set()
        for part in uid_set.decode().split(","):
            low, _, high = part.partition(":")
            start = top if low == "*" else int(low)
            end = start if not high else (top if high == "*" else int(high))
            wanted.update(range(min(start, end), max(start, end) + 1))
        return [(i, m) for i, m in enumerate(self.mails, start=1) if m.uid in wanted]


def _unquote(value: bytes) -> str:
    text = value.decode("utf-8", "replace")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _flags(mail: StoredMail) -> bytes:
    return " ".join(sorted(mail.flags)).encode()
