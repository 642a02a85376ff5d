package integration

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Ephemeral onion services and client authorization through tinytor's
// control port (issue 8: ADD_ONION, DEL_ONION, ONION_CLIENT_AUTH_*,
// HSFETCH, HS_DESC events), driven by stem.

// stemOnionScript arguments: control port, password, HTTP target
// (addr:port), the reference client's SOCKS port, tinytor's SOCKS port
// (with ExtendedErrors), the marker, and a client authorization key pair
// (x25519 public key in base32, private key in base64).
const stemOnionScript = `
import socket, sys, threading, time
import stem, stem.connection
from stem.control import Controller, EventType

ctl_port, password, http_addr = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ref_socks, tt_socks, marker = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6].encode()
auth_pub, auth_priv = sys.argv[7], sys.argv[8]

def check(cond, what):
    if not cond:
        print("FAIL:", what, flush=True)
        sys.exit(1)
    print("ok:", what, flush=True)

def recv_exact(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise IOError("connection closed")
        b += d
    return b

def socks_get(port, host, timeout=90):
    """GET / from host:80 through the SOCKS5 proxy at port: (reply, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(b"\x05\x01\x00")
        if recv_exact(s, 2) != b"\x05\x00":
            return -1, b""
        h = host.encode()
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(h)]) + h + (80).to_bytes(2, "big"))
        rep = recv_exact(s, 4)
        if rep[1] != 0:
            return rep[1], b""
        recv_exact(s, 6 if rep[3] == 1 else 18)
        s.sendall(("GET / HTTP/1.0\r\nHost: %s\r\n\r\n" % host).encode())
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        return 0, data
    except (IOError, socket.timeout) as e:
        return -2, str(e).encode()
    finally:
        s.close()

def reach(port, host, within):
    deadline = time.time() + within
    while True:
        code, body = socks_get(port, host)
        if code == 0 and marker in body:
            return True
        print("  GET via %d: reply %d %r" % (port, code, body[:80]), flush=True)
        if time.time() > deadline:
            return False
        time.sleep(3)

def refused(port, host, within):
    deadline = time.time() + within
    while True:
        code, body = socks_get(port, host)
        if code != 0 or marker not in body:
            print("  refused via %d: reply %d %r" % (port, code, body[:80]), flush=True)
            return True
        if time.time() > deadline:
            return False
        time.sleep(3)

with Controller.from_port(port=ctl_port) as c:
    # Controller.authenticate, unlike stem.connection.authenticate_password,
    # also sends SETEVENTS for the listeners added later.
    c.authenticate(password=password)
    lock = threading.Lock()
    hs_events = []
    def on_hs(e):
        with lock:
            hs_events.append(e)
    c.add_event_listener(on_hs, EventType.HS_DESC)

    # A new service, published before the reply is used.
    t0 = time.time()
    r = c.create_ephemeral_hidden_service({80: http_addr}, await_publication=True, timeout=240)
    sid = r.service_id
    check(len(sid) == 56 and r.private_key_type == "ED25519-V3" and len(r.private_key) == 88,
          "ADD_ONION NEW: %s published in %.0fs" % (sid, time.time() - t0))
    with lock:
        acts = [(e.action, e.address) for e in hs_events]
    check(("UPLOAD", sid) in acts and any(a == "UPLOADED" for a, _ in acts), "HS_DESC UPLOAD/UPLOADED events")
    check(c.get_info("onions/current") == sid, "GETINFO onions/current")
    check(reach(ref_socks, sid + ".onion", 180), "the reference C tor client reaches %s.onion" % sid)

    # HSFETCH: tinytor's client fetches the descriptor, HS_DESC reports it.
    with lock:
        n0 = len(hs_events)
    c.msg("HSFETCH " + sid)
    deadline = time.time() + 120
    got = None
    while time.time() < deadline and got is None:
        with lock:
            for e in hs_events[n0:]:
                if e.address == sid and e.action in ("RECEIVED", "FAILED"):
                    got = e
        time.sleep(0.2)
    with lock:
        req = [e for e in hs_events[n0:] if e.action == "REQUESTED" and e.address == sid]
    check(req and got is not None and got.action == "RECEIVED" and got.directory_fingerprint,
          "HSFETCH: HS_DESC REQUESTED then %s from %s" % (got and got.action, got and got.directory))

    # DEL_ONION: the service goes away.
    check(c.remove_ephemeral_hidden_service(sid), "DEL_ONION")
    check(c.get_info("onions/current") == "", "onions/current empty after DEL_ONION")
    check(refused(ref_socks, sid + ".onion", 150), "after DEL_ONION the service is unreachable")

    # The same key again (no key in the reply), detached.
    r2 = c.create_ephemeral_hidden_service({80: http_addr}, key_type="ED25519-V3", key_content=r.private_key,
                                           detached=True, await_publication=False)
    check(r2.service_id == sid and r2.private_key is None, "ADD_ONION with the given key: same ServiceID, no key")
    check(c.get_info("onions/detached") == sid and c.get_info("onions/current") == "", "onions/detached")
    check(c.remove_ephemeral_hidden_service(sid), "DEL_ONION of the detached service")

    # DiscardPK.
    r3 = c.create_ephemeral_hidden_service({80: http_addr}, discard_key=True, await_publication=False)
    check(r3.private_key is None and len(r3.service_id) == 56, "Flags=DiscardPK: no key in the reply")
    check(c.remove_ephemeral_hidden_service(r3.service_id), "DEL_ONION (DiscardPK)")

    # ClientAuthV3: clients without the key are refused; tinytor's own
    # client gets in once ONION_CLIENT_AUTH_ADD gave it the key.
    r4 = c.create_ephemeral_hidden_service({80: http_addr}, client_auth_v3=auth_pub, await_publication=True, timeout=240)
    aid = r4.service_id
    check(len(aid) == 56, "ADD_ONION ClientAuthV3: %s" % aid)
    code, _ = socks_get(ref_socks, aid + ".onion")
    check(code != 0, "the reference client without the key is refused (reply %d)" % code)
    code, _ = socks_get(tt_socks, aid + ".onion")
    check(code == 0xF4, "tinytor's client without the key: client authorization required (reply %#x)" % code)
    resp = c.msg("ONION_CLIENT_AUTH_ADD %s x25519:%s ClientName=alice" % (aid, auth_priv))
    check(resp.is_ok(), "ONION_CLIENT_AUTH_ADD: %s" % resp)
    view = str(c.msg("ONION_CLIENT_AUTH_VIEW " + aid))
    check(("CLIENT %s x25519:%s ClientName=alice" % (aid, auth_priv)) in view, "ONION_CLIENT_AUTH_VIEW")
    check(reach(tt_socks, aid + ".onion", 180), "tinytor's client with the key reaches the service")
    resp = c.msg("ONION_CLIENT_AUTH_REMOVE " + aid)
    check(resp.is_ok(), "ONION_CLIENT_AUTH_REMOVE: %s" % resp)
    check(c.remove_ephemeral_hidden_service(aid), "DEL_ONION (ClientAuthV3)")
print("ALL OK")
`

func TestControlOnion(t *testing.T) {
	n := RequireNetwork(t)
	py := requireStem(t)
	// As startControlled, but with onionTestBinary (TINYTOR_TEST_BINARY
	// may be a -race build).
	bin := onionTestBinary(t)
	c := &controlled{control: freePort(t)}
	ext := freePort(t) // a SocksPort with proposal 304's extended errors
	dir := t.TempDir()
	c.tinytorProc = startTinytor(t, n, bin, dir, nil,
		"SocksPort "+ext.String()+" ExtendedErrors",
		"ControlPort "+c.control.String(),
		"HashedControlPassword "+hashPassword(t, bin, controlPassword))
	c.waitFor("Opened Control listener", time.Minute)
	bootstrapped(t, c.tinytorProc)
	alice, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := strings.TrimRight(base32.StdEncoding.EncodeToString(alice.PublicKey().Bytes()), "=")
	priv := base64.StdEncoding.EncodeToString(alice.Bytes())
	script := filepath.Join(t.TempDir(), "stem_onion_test.py")
	if err := os.WriteFile(script, []byte(stemOnionScript), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, script, strconv.Itoa(int(c.control.Port())), controlPassword, n.HTTPAddr.String(),
		strconv.Itoa(int(n.ClientSOCKS.Port())), strconv.Itoa(int(ext.Port())), n.Marker, pub, priv)
	out, err := cmd.CombinedOutput()
	t.Logf("stem script:\n%s", out)
	if err != nil || !strings.Contains(string(out), "ALL OK") {
		t.Fatalf("stem onion script failed: %v", err)
	}
	checkNoRace(t, c.tinytorProc)
}
