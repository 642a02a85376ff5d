package control

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func readTorHashes(t *testing.T) [][2]string {
	t.Helper()
	f, err := os.Open("testdata/tor-hash-password.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][2]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		pw, h, ok := strings.Cut(l, "\t")
		if !ok {
			t.Fatalf("bad testdata line %q", l)
		}
		out = append(out, [2]string{pw, h})
	}
	if len(out) < 5 {
		t.Fatalf("only %d vectors", len(out))
	}
	return out
}

// TestCheckPasswordTorVectors verifies hashes made by C tor.
func TestCheckPasswordTorVectors(t *testing.T) {
	for _, v := range readTorHashes(t) {
		ok, err := CheckPassword([]byte(v[0]), v[1])
		if err != nil || !ok {
			t.Errorf("CheckPassword(%q, %s) = %v, %v; want true", v[0], v[1], ok, err)
		}
		ok, _ = CheckPassword([]byte(v[0]+"x"), v[1])
		if ok {
			t.Errorf("wrong password accepted for %s", v[1])
		}
	}
}

// TestHashPasswordReproducesTor recomputes each C tor hash from its salt.
func TestHashPasswordReproducesTor(t *testing.T) {
	for _, v := range readTorHashes(t) {
		raw, err := hex.DecodeString(v[1][3:])
		if err != nil {
			t.Fatal(err)
		}
		got, err := HashPassword(v[0], raw[:8])
		if err != nil {
			t.Fatal(err)
		}
		if got != v[1] {
			t.Errorf("HashPassword(%q) = %s, tor made %s", v[0], got, v[1])
		}
	}
}

// TestHashPasswordRandomSalt checks the random-salt path and the format.
func TestHashPasswordRandomSalt(t *testing.T) {
	h1, err := HashPassword("secret", nil)
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashPassword("secret", nil)
	if h1 == h2 {
		t.Fatal("two random-salt hashes are equal")
	}
	if len(h1) != 3+58 || !strings.HasPrefix(h1, "16:") || h1[3+16:3+18] != "60" {
		t.Fatalf("bad format %q", h1)
	}
	if ok, err := CheckPassword([]byte("secret"), h1); !ok || err != nil {
		t.Fatalf("round trip failed: %v %v", ok, err)
	}
	if _, err := HashPassword("x", []byte{1, 2}); err == nil {
		t.Fatal("short salt accepted")
	}
	for _, bad := range []string{"16:zz", "16:00", "", "AAAA"} {
		if err := ValidateHashedPassword(bad); err == nil {
			t.Errorf("ValidateHashedPassword(%q) accepted", bad)
		}
	}
}

// TestTorAcceptsOurHash runs C tor's config validation on our hash (it
// decodes the value as decode_hashed_passwords does). That the digest is
// right is shown by TestHashPasswordReproducesTor.
func TestTorAcceptsOurHash(t *testing.T) {
	tor, err := exec.LookPath("tor")
	if err != nil {
		t.Skip("tor not installed")
	}
	h, err := HashPassword("foo", []byte("saltsalt"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	torrc := filepath.Join(dir, "torrc")
	conf := "DataDirectory " + dir + "\nSocksPort 0\nControlPort 127.0.0.1:auto\nHashedControlPassword " + h + "\n"
	if err := os.WriteFile(torrc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tor, "--verify-config", "-f", torrc).CombinedOutput()
	if err != nil {
		t.Fatalf("tor rejected our hash %s: %v\n%s", h, err, out)
	}
	// And a broken one must be rejected, so the check above means something.
	bad := strings.Replace(conf, h, h[:len(h)-2], 1)
	os.WriteFile(torrc, []byte(bad), 0o600)
	if out, err := exec.Command(tor, "--verify-config", "-f", torrc).CombinedOutput(); err == nil {
		t.Fatalf("tor accepted a truncated hash:\n%s", out)
	}
}

func TestSafeCookieHashesDistinct(t *testing.T) {
	cookie := bytes.Repeat([]byte{7}, 32)
	s, c := SafeCookieHashes(cookie, []byte("cn"), []byte("sn"))
	if len(s) != 32 || len(c) != 32 || bytes.Equal(s, c) {
		t.Fatalf("bad hashes %x %x", s, c)
	}
}

func TestNewCookie(t *testing.T) {
	p := filepath.Join(t.TempDir(), "control_auth_cookie")
	c, err := NewCookie(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("cookie mode %v", st.Mode().Perm())
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, c) || len(c) != 32 {
		t.Fatalf("cookie file %x, returned %x", got, c)
	}
}
