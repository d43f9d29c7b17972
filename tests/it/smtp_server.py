"""A real SMTP server (aiosmtpd) for the email channel's tests.

Started by tests/it/smtp_server.rs with one JSON argument:
  {"host": "127.0.0.1", "port": 0, "tls": "none" | "starttls" | "implicit", "cert": PEM path,
   "key": PEM path, "auth": [user, password] or null, "data_reply": str or null}

It prints one JSON object per line on stdout: {"event": "ready", "port": N}
once listening, {"event": "message", ...} for every accepted message (the
envelope, the raw data and the session's facts: TLS, authenticated user and
mechanism) and {"event": "auth_failed", "mechanism": M} for every rejected
AUTH. It reads "sync N" lines on stdin and answers {"event": "sync",
"seq": N}, and exits when its stdin closes, so it never outlives the test.

AUTH PLAIN and LOGIN are aiosmtpd's own; CRAM-MD5 (RFC 2195) is added here
through aiosmtpd's handler hook, because the email channel implements it
itself. With STARTTLS, AUTH is offered only after the TLS upgrade, so an
authenticated message proves the upgrade happened.
"""

import asyncio
import hashlib
import hmac
import json
import os
import ssl
import sys
import threading

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword


_out = threading.Lock()


def emit(obj):
    with _out:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return v


class Handler:
    def __init__(self, cfg):
        self.user, self.password = (cfg.get("auth") or [None, None])
        self.data_reply = cfg.get("data_reply")
        self.challenges = 0

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        session.x_mechanism = mechanism
        ok = (
            isinstance(auth_data, LoginPassword)
            and text(auth_data.login) == self.user
            and text(auth_data.password) == self.password
        )
        if not ok:
            emit({"event": "auth_failed", "mechanism": mechanism})
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=auth_data)

    async def auth_CRAM__MD5(self, server, args):
        self.challenges += 1
        challenge = f"<{os.getpid()}.{self.challenges}@smtp.test>".encode()
        answer = await server.challenge_auth(challenge)
        if answer is MISSING:
            return AuthResult(success=False, handled=True)
        user, _, digest = text(answer).rpartition(" ")
        want = hmac.new(
            (self.password or "").encode(), challenge, hashlib.md5
        ).hexdigest()
        server.session.x_mechanism = "CRAM-MD5"
        if user != self.user or not hmac.compare_digest(digest, want):
            emit({"event": "auth_failed", "mechanism": "CRAM-MD5"})
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        ssl_object = server.transport.get_extra_info("ssl_object")
        emit(
            {
                "event": "message",
                "hello": session.host_name,
                "mail_from": envelope.mail_from,
                "rcpt_to": list(envelope.rcpt_tos),
                "data": text(envelope.original_content),
                "tls": ssl_object is not None,
                "auth_user": text(session.login_data) if session.authenticated else None,
                "auth_mechanism": getattr(session, "x_mechanism", None)
                if session.authenticated
                else None,
            }
        )
        return "250 2.0.0 queued"


async def main(cfg):
    tls = cfg.get("tls", "none")
    ctx = None
    if tls != "none":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cfg["cert"], cfg["key"])
    handler = Handler(cfg)
    auth = bool(cfg.get("auth"))

    def factory():
        return SMTP(
            handler,
            hostname="smtp.test",
            ident="watchpost-test",
            tls_context=ctx if tls == "starttls" else None,
            authenticator=handler.authenticate if auth else None,
            auth_required=auth,
            # Over STARTTLS, AUTH waits for the upgrade; implicit TLS is
            # encrypted from the first byte; a plain server with AUTH lets
            # the channel's refusal rules (loopback only) be tested.
            auth_require_tls=tls == "starttls" or not auth,
            auth_exclude_mechanism=[] if auth else ["PLAIN", "LOGIN", "CRAM-MD5"],
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        factory,
        host=cfg.get("host", "127.0.0.1"),
        port=cfg.get("port", 0),
        ssl=ctx if tls == "implicit" else None,
    )
    emit({"event": "ready", "port": server.sockets[0].getsockname()[1]})
    await server.serve_forever()


def control():
    # "sync N" is echoed behind every event already printed, so the test
    # knows it has seen them all; end of input ends the server.
    for line in sys.stdin:
        word, _, seq = line.strip().partition(" ")
        if word == "sync":
            emit({"event": "sync", "seq": int(seq)})
    os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=control, daemon=True).start()
    asyncio.run(main(json.loads(sys.argv[1])))
