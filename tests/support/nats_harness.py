#!/usr/bin/env python3
"""nats-servers for the Lunatic NATS tests (tests/tests/nats_*.rs), started outside Lunatic.

Tests inside Lunatic cannot start OS processes, so scripts/test runs this helper in the
background before the Lunatic tests. It starts, each on its own random loopback ports and in its
own temporary directory:

  main      TCP + WebSocket listener, no auth          SWARM_NATS_URL, SWARM_NATS_WS_URL
  token     TCP, token auth ("s3cret-token")           SWARM_NATS_TOKEN_URL
  userpass  TCP, user "alice" / password "wonder"      SWARM_NATS_USERPASS_URL
  nkey      TCP, nkey users (keys made at start):      SWARM_NATS_NKEY_URL
              one that may publish and subscribe only on `allowed.>` and `_INBOX.>`
                                                       SWARM_NATS_NKEY_SEED
              one without limits                       SWARM_NATS_NKEY_FULL_SEED
              one limited to `allowed.>` (no `_INBOX.>`) SWARM_NATS_NKEY_NOINBOX_SEED
  jwt       TCP, operator mode: an operator, a system account, an account and a user, keys
            and JWTs (NATS JWT v2, signed with the `nkeys` package) made at start, the accounts
            preloaded into a memory resolver           SWARM_NATS_JWT_URL
              the user's .creds; it may publish and subscribe only on `allowed.>` and
              `_INBOX.>`                               SWARM_NATS_JWT_CREDS
              a user of an account the operator never signed (the server must refuse it)
                                                       SWARM_NATS_JWT_UNTRUSTED_CREDS
  r1, r2    TCP + WebSocket on ports fixed for the run, restartable on request
                                                       SWARM_NATS_R1_URL, ..._R1_WS_URL, ...
  js        TCP, JetStream on (`jetstream { store_dir }` in its own directory, 256 MiB memory,
            1 GiB file)                                SWARM_NATS_JS_URL
  js_r      the same, restartable on request (its file streams survive a restart)
                                                       SWARM_NATS_JS_R_URL
  js_noperm TCP, JetStream on, and every client is a user that may not publish to `$JS.API.>`
            or `$KV.>` (`no_auth_user` with a deny list)
                                                       SWARM_NATS_JS_NOPERM_URL
  (main has no JetStream: a JetStream call there finds nobody answering on $JS.API.)
  tls       TLS-first (`handshake_first: true`), certificate for localhost and 127.0.0.1
            issued by a CA made at start               SWARM_NATS_TLS_URL (tls://localhost:...)
  tls_r     the same, on a port fixed for the run, restartable on request
                                                       SWARM_NATS_TLS_R_URL
  tls_wrong_name   TLS-first, certificate from the same CA for "nats.invalid" only
                                                       SWARM_NATS_TLS_WRONG_NAME_URL
  tls_upgrade      TLS the classic NATS way (plain INFO, then the client upgrades)
                                                       SWARM_NATS_TLS_UPGRADE_URL
  tls_verify       TLS-first, wants a client certificate from the CA (`verify: true`)
                                                       SWARM_NATS_TLS_VERIFY_URL
  The CA (SWARM_NATS_TLS_CA), a second CA that issued nothing the servers use
  (SWARM_NATS_TLS_UNTRUSTED_CA), both PEM files, and their directory (SWARM_NATS_TLS_DIR, which
  scripts/lunatic-runner opens to the Lunatic tests) are made with the openssl CLI: EC P-256,
  valid for two days. Without openssl the TLS servers are left out (said on stderr).

The .creds files are written under tests/test-data/ (removed on exit) and their paths are given
relative to tests/, the working directory of `cargo test -p swarm-tests`: a Lunatic node may only
read inside the directories it was given, and a test node is given its working directory.

Then it writes `KEY=VALUE` lines to the file given as its argument (the caller exports them) and
serves a control port (SWARM_NATS_CONTROL): a test sends one line, `restart r1`, `stop r1` or
`start r1` (r2, tls_r, js_r likewise), and gets `ok` once the server is back (or gone), or
`error ...`.

The nkey and jwt servers need the `nkeys` package (scripts/setup installs it into .tools/venv);
without it they are left out, with a note.

With nats-py importable (scripts/setup installs it into .tools/venv), it also runs a peer
written with nats-py on `main` for the cross-language test (SWARM_NATS_PY_PEER=1):
  - requests on `xlang.py.echo` get `py:<payload>` back, with the request's headers plus
    `X-Answered-By: nats-py`;
  - a message on `xlang.py.forward.<id>` is published again on `xlang.rust.<id>`, payload and
    headers kept, plus `X-Seen-By: nats-py`.

Everything is bounded: a server must accept connections within 10 s, the helper exits after
30 minutes or as soon as its parent process is gone, and on SIGTERM/SIGINT it stops every
server it started.
"""

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

LIFETIME = 30 * 60
READY_TIMEOUT = 10.0
TOKEN = "s3cret-token"
USER, PASSWORD = "alice", "wonder"

servers = {}
lock = threading.Lock()
tmp = tempfile.mkdtemp(prefix="swarm-nats-")
# Files the Lunatic tests read: under tests/ (their working directory), see the docstring.
TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
test_data = None
stopping = False
ALLOWED = ["allowed.>", "_INBOX.>"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc):
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nats-server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nats-server did not listen on {port} within {READY_TIMEOUT}s")


class Server:
    def __init__(self, name, conf):
        self.name = name
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.conf = os.path.join(self.dir, "server.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-c", self.conf,
             "-l", os.path.join(self.dir, "server.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_ready(self.port, self.proc)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.proc = None


def openssl(*args, san="DNS:unused"):
    """Runs the openssl CLI; `san` fills the config's subjectAltName (read by every command)."""
    done = subprocess.run(["openssl", *args], timeout=30, env={**os.environ, "SWARM_SAN": san},
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.decode(errors='replace')}")


OPENSSL_CONF = """[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $ENV::SWARM_SAN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def make_tls_files():
    """A CA, a second CA, and server certificates from the first; returns their paths."""
    d = os.path.join(tmp, "tls-files")
    os.makedirs(d)
    conf = os.path.join(d, "openssl.cnf")
    with open(conf, "w") as f:
        f.write(OPENSSL_CONF)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    files = {}
    for name, cn in (("ca", "swarm test CA"), ("untrusted-ca", "swarm untrusted CA")):
        files[name] = os.path.join(d, f"{name}.pem")
        openssl("req", "-x509", "-config", conf, "-extensions", "ca", *ec,
                "-keyout", os.path.join(d, f"{name}.key"), "-out", files[name],
                "-days", "2", "-subj", f"/CN={cn}")
    servers_certs = (("server", "localhost", "DNS:localhost, IP:127.0.0.1"),
                     ("wrong-name", "nats.invalid", "DNS:nats.invalid"))
    for serial, (name, cn, san) in enumerate(servers_certs, start=2):
        key, csr = os.path.join(d, f"{name}.key"), os.path.join(d, f"{name}.csr")
        files[name] = os.path.join(d, f"{name}.pem")
        files[name + "-key"] = key
        openssl("req", "-new", "-config", conf, *ec, "-keyout", key, "-out", csr,
                "-subj", f"/CN={cn}")
        openssl("x509", "-req", "-in", csr, "-CA", files["ca"],
                "-CAkey", os.path.join(d, "ca.key"), "-set_serial", str(serial), "-days", "2",
                "-extfile", conf, "-extensions", "server", "-out", files[name],
                san=san)
    files["dir"] = d
    return files


def tls_block(cert, key, first=True, verify_with=None):
    lines = [f'cert_file: "{cert}"', f'key_file: "{key}"']
    if first:
        lines.append("handshake_first: true")
    if verify_with:
        lines += [f'ca_file: "{verify_with}"', "verify: true"]
    return "tls {\n" + "".join(f"  {line}\n" for line in lines) + "}\n"


def jetstream_block(name):
    """JetStream on, storing under the server's own directory (made by Server), with limits
    small enough for a shared test machine."""
    store = os.path.join(tmp, name, "jetstream")
    return (f'jetstream {{ store_dir: "{store}", max_memory_store: 256MB, '
            "max_file_store: 1GB }\n")


def ws_block(port):
    return f'websocket {{ host: "127.0.0.1", port: {port}, no_tls: true }}\n'


def start_py_peer(url):
    """Runs the nats-py peer in a thread; returns once it is subscribed (or raises)."""
    import asyncio
    import nats  # noqa: F401  (ImportError: no peer)

    ready = threading.Event()
    failed = []

    async def run():
        nc = await nats.connect(url, name="swarm-test-nats-py")

        async def echo(msg):
            headers = dict(msg.headers or {})
            headers["X-Answered-By"] = "nats-py"
            await nc.publish(msg.reply, b"py:" + msg.data, headers=headers)

        async def forward(msg):
            ident = msg.subject.rsplit(".", 1)[1]
            headers = dict(msg.headers or {})
            headers["X-Seen-By"] = "nats-py"
            await nc.publish(f"xlang.rust.{ident}", msg.data, headers=headers)

        await nc.subscribe("xlang.py.echo", cb=echo)
        await nc.subscribe("xlang.py.forward.*", cb=forward)
        await nc.flush()
        ready.set()
        while not stopping:
            await asyncio.sleep(0.2)
        await nc.close()

    def thread():
        try:
            asyncio.run(run())
        except Exception as e:  # reported below, or after start as a lost peer
            failed.append(e)
            ready.set()

    threading.Thread(target=thread, daemon=True).start()
    if not ready.wait(15) or failed:
        raise RuntimeError(f"nats-py peer did not start: {failed}")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key(prefix):
    """A fresh nkey pair of one kind: (seed, public key, key pair)."""
    import nkeys

    seed = nkeys.encode_seed(os.urandom(32), prefix)
    kp = nkeys.from_seed(seed)
    return seed.decode(), kp.public_key.decode(), kp


def encode_jwt(subject, name, issuer_public, issuer_kp, nats):
    """A NATS JWT v2 (what nats-io/jwt's `Encode` makes): header `{"typ":"JWT","alg":
    "ed25519-nkey"}`, claims with `jti` the unpadded base32 of the SHA-512/256 of the claims
    without it, and the ed25519 signature of `<header>.<claims>` by the issuer."""
    compact = {"separators": (",", ":")}
    claims = {"iat": int(time.time()), "iss": issuer_public, "name": name, "sub": subject}
    digest = hashlib.new("sha512_256", json.dumps(claims, **compact).encode()).digest()
    claims = {"jti": base64.b32encode(digest).rstrip(b"=").decode(), **claims, "nats": nats}
    header = b64url(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}, **compact).encode())
    signed = header + "." + b64url(json.dumps(claims, **compact).encode())
    return signed + "." + b64url(issuer_kp.sign(signed.encode()))


def creds_text(jwt, seed):
    """A .creds file as `nsc` writes it."""
    return (
        f"-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n"
        "*************************************************************\n"
    )


def quoted(subjects):
    return ", ".join(f'"{x}"' for x in subjects)


def permissions(allow):
    return {"pub": {"allow": allow}, "sub": {"allow": allow}}


def auth_specs():
    """Configs of the `nkey` and `jwt` servers, and the variables that go with them."""
    global test_data
    import nkeys

    env = {}
    limited, limited_pub, _ = new_key(nkeys.PREFIX_BYTE_USER)
    full, full_pub, _ = new_key(nkeys.PREFIX_BYTE_USER)
    noinbox, noinbox_pub, _ = new_key(nkeys.PREFIX_BYTE_USER)
    nkey_conf = (
        "authorization {\n  users: [\n"
        f'    {{ nkey: "{limited_pub}", permissions: {{ publish: [{quoted(ALLOWED)}], '
        f"subscribe: [{quoted(ALLOWED)}] }} }}\n"
        f'    {{ nkey: "{full_pub}" }}\n'
        f'    {{ nkey: "{noinbox_pub}", permissions: {{ publish: ["allowed.>"], '
        'subscribe: ["allowed.>"] } }\n'
        "  ]\n}\n"
    )
    env["SWARM_NATS_NKEY_SEED"] = limited
    env["SWARM_NATS_NKEY_FULL_SEED"] = full
    env["SWARM_NATS_NKEY_NOINBOX_SEED"] = noinbox

    _, op_pub, op_kp = new_key(nkeys.PREFIX_BYTE_OPERATOR)
    _, sys_pub, _ = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    _, acc_pub, acc_kp = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    user_seed, user_pub, _ = new_key(nkeys.PREFIX_BYTE_USER)
    no_limits = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                 "wildcards": True, "conn": -1, "leaf": -1}
    operator_jwt = encode_jwt(op_pub, "swarm-test-operator", op_pub, op_kp,
                              {"system_account": sys_pub, "type": "operator", "version": 2})
    system_jwt = encode_jwt(sys_pub, "SYS", op_pub, op_kp,
                            {"limits": no_limits, "type": "account", "version": 2})
    account_jwt = encode_jwt(acc_pub, "swarm-test-account", op_pub, op_kp,
                             {"limits": no_limits, "type": "account", "version": 2})
    user_nats = {**permissions(ALLOWED), "subs": -1, "data": -1, "payload": -1,
                 "type": "user", "version": 2}
    user_jwt = encode_jwt(user_pub, "swarm-test-user", acc_pub, acc_kp, user_nats)
    # A user of an account the operator never signed (and the server never loaded).
    _, stranger_pub, stranger_kp = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    lost_seed, lost_pub, _ = new_key(nkeys.PREFIX_BYTE_USER)
    lost_jwt = encode_jwt(lost_pub, "swarm-test-untrusted", stranger_pub, stranger_kp, user_nats)
    operator_file = os.path.join(tmp, "operator.jwt")
    with open(operator_file, "w") as f:
        f.write(operator_jwt)
    jwt_conf = (
        f'operator: "{operator_file}"\n'
        "resolver: MEMORY\n"
        f"system_account: {sys_pub}\n"
        f'resolver_preload: {{\n  {sys_pub}: "{system_jwt}"\n  {acc_pub}: "{account_jwt}"\n}}\n'
    )
    parent = os.path.join(TESTS_DIR, "test-data")
    os.makedirs(parent, exist_ok=True)
    test_data = tempfile.mkdtemp(prefix="nats-auth-", dir=parent)
    for var, name, jwt, seed in [("SWARM_NATS_JWT_CREDS", "user.creds", user_jwt, user_seed),
                                 ("SWARM_NATS_JWT_UNTRUSTED_CREDS", "untrusted.creds", lost_jwt,
                                  lost_seed)]:
        path = os.path.join(test_data, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(creds_text(jwt, seed))
        env[var] = os.path.relpath(path, TESTS_DIR)
    return {"nkey": nkey_conf, "jwt": jwt_conf}, env


def stop_all(*_):
    global stopping
    stopping = True
    time.sleep(0.3)  # the nats-py peer closes its connection first
    with lock:
        for s in servers.values():
            s.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    if test_data is not None:
        shutil.rmtree(test_data, ignore_errors=True)
    os._exit(0)


def handle(conn):
    conn.settimeout(30)
    with conn:
        data = b""
        while not data.endswith(b"\n") and len(data) < 256:
            chunk = conn.recv(256)
            if not chunk:
                return
            data += chunk
        words = data.decode(errors="replace").split()
        try:
            if len(words) != 2 or words[1] not in ("r1", "r2", "tls_r", "js_r") or words[0] not in ("restart", "stop", "start"):
                raise RuntimeError(f"unknown command {words}")
            with lock:
                s = servers[words[1]]
                if words[0] in ("restart", "stop"):
                    s.stop()
                if words[0] in ("restart", "start"):
                    s.start()
            conn.sendall(b"ok\n")
        except Exception as e:  # reported to the test, which fails with it
            conn.sendall(f"error {e}\n".encode())


def main():
    out_file = sys.argv[1]
    parent = os.getppid()
    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    try:
        ws_main = free_port()
        specs = {
            "main": ws_block(ws_main),
            "token": f'authorization {{ token: "{TOKEN}" }}\n',
            "userpass": f'authorization {{ user: "{USER}", password: "{PASSWORD}" }}\n',
        }
        specs["js"] = jetstream_block("js")
        specs["js_r"] = jetstream_block("js_r")
        specs["js_noperm"] = jetstream_block("js_noperm") + (
            'no_auth_user: "nojs"\n'
            'authorization { users: [ { user: "nojs", password: "unused-nojs", permissions: '
            '{ publish: { deny: ["$JS.API.>", "$KV.>"] } } } ] }\n')
        ws_ports = {"main": ws_main}
        for name in ("r1", "r2"):
            ws_ports[name] = free_port()
            specs[name] = ws_block(ws_ports[name])
        try:
            auth_confs, auth_env = auth_specs()
            specs.update(auth_confs)
        except ImportError:
            auth_env = {}
            print("nats harness: the nkeys package is not installed, the nkey and JWT servers "
                  "are left out", file=sys.stderr)
        tls_files = None
        if shutil.which("openssl"):
            tls_files = make_tls_files()
            specs["tls"] = tls_block(tls_files["server"], tls_files["server-key"])
            specs["tls_r"] = specs["tls"]
            specs["tls_wrong_name"] = tls_block(tls_files["wrong-name"],
                                                tls_files["wrong-name-key"])
            specs["tls_upgrade"] = tls_block(tls_files["server"], tls_files["server-key"],
                                             first=False)
            specs["tls_verify"] = tls_block(tls_files["server"], tls_files["server-key"],
                                            verify_with=tls_files["ca"])
        else:
            print("nats harness: no openssl CLI, the TLS servers are left out", file=sys.stderr)
        for name, conf in specs.items():
            s = Server(name, conf)
            s.start()
            servers[name] = s
        control = socket.socket()
        control.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        control.bind(("127.0.0.1", 0))
        control.listen(16)
        env = {
            "SWARM_NATS_URL": f"nats://127.0.0.1:{servers['main'].port}",
            "SWARM_NATS_WS_URL": f"ws://127.0.0.1:{ws_ports['main']}",
            "SWARM_NATS_TOKEN_URL": f"nats://127.0.0.1:{servers['token'].port}",
            "SWARM_NATS_USERPASS_URL": f"nats://127.0.0.1:{servers['userpass'].port}",
            "SWARM_NATS_JS_URL": f"nats://127.0.0.1:{servers['js'].port}",
            "SWARM_NATS_JS_R_URL": f"nats://127.0.0.1:{servers['js_r'].port}",
            "SWARM_NATS_JS_NOPERM_URL": f"nats://127.0.0.1:{servers['js_noperm'].port}",
            "SWARM_NATS_CONTROL": f"127.0.0.1:{control.getsockname()[1]}",
        }
        for name in ("r1", "r2"):
            env[f"SWARM_NATS_{name.upper()}_URL"] = f"nats://127.0.0.1:{servers[name].port}"
            env[f"SWARM_NATS_{name.upper()}_WS_URL"] = f"ws://127.0.0.1:{ws_ports[name]}"
        for name in ("nkey", "jwt"):
            if name in servers:
                env[f"SWARM_NATS_{name.upper()}_URL"] = f"nats://127.0.0.1:{servers[name].port}"
        env.update(auth_env)
        if tls_files:
            # A host name: the runtime's TLS client checks certificates against names only.
            for name in ("tls", "tls_r", "tls_wrong_name", "tls_upgrade", "tls_verify"):
                env[f"SWARM_NATS_{name.upper()}_URL"] = f"tls://localhost:{servers[name].port}"
            env["SWARM_NATS_TLS_CA"] = tls_files["ca"]
            env["SWARM_NATS_TLS_UNTRUSTED_CA"] = tls_files["untrusted-ca"]
            env["SWARM_NATS_TLS_DIR"] = tls_files["dir"]
        try:
            start_py_peer(env["SWARM_NATS_URL"])
            env["SWARM_NATS_PY_PEER"] = "1"
        except ImportError:
            print("nats harness: nats-py is not installed, the cross-language test is skipped",
                  file=sys.stderr)
        with open(out_file + ".tmp", "w") as f:
            for k, v in env.items():
                f.write(f"{k}={v}\n")
        os.rename(out_file + ".tmp", out_file)
    except Exception as e:
        print(f"nats harness: {e}", file=sys.stderr)
        stop_all()

    control.settimeout(1.0)
    started = time.monotonic()
    while time.monotonic() - started < LIFETIME and os.getppid() == parent:
        try:
            conn, _ = control.accept()
        except socket.timeout:
            continue
        threading.Thread(target=handle, args=(conn,), daemon=True).start()
    stop_all()


if __name__ == "__main__":
    main()
