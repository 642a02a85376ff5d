package desc

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"tinytor/onion/addr"
	"tinytor/onion/keys"
	"tinytor/tor/cell"
)

const stemAddr = "sltib6sxkuxh2scmtuvd5w2g7pahnzkovefxpo4e4ptnkzl5kkq5h2ad.onion"

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stemNow is a time when the stem descriptor's certificates are valid.
func stemNow(t testing.TB) time.Time {
	o, err := ParseOuter(readFile(t, "hidden_service_v3"), time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return o.SigningKeyCert.Expiration().Add(-time.Hour)
}

func TestStemDescriptor(t *testing.T) {
	doc := readFile(t, "hidden_service_v3")
	now := stemNow(t)
	a, err := addr.Parse(stemAddr)
	if err != nil {
		t.Fatal(err)
	}
	o, err := ParseOuter(doc, now)
	if err != nil {
		t.Fatal(err)
	}
	if o.RevisionCounter != 42 || o.Lifetime != 180*time.Minute {
		t.Errorf("revision %d lifetime %v", o.RevisionCounter, o.Lifetime)
	}
	// The blinded key is that of period 17391 (see onion/keys).
	bp, _ := keys.BlindPublic(a.PublicKey(), 17391, 1440)
	if !bp.Equal(o.BlindedKey) {
		t.Fatal("blinded key")
	}
	sub := keys.Subcredential(a.PublicKey(), o.BlindedKey)
	first, err := DecryptLayer(o.Superencrypted, o.BlindedKey, sub, 42, SuperencryptedConst)
	if err != nil {
		t.Fatal(err)
	}
	wantFirst := bytes.TrimRight(readFile(t, "hidden_service_v3_outer_layer"), "\x00")
	if !bytes.Equal(first, wantFirst) {
		t.Fatalf("first layer differs (%d vs %d bytes)", len(first), len(wantFirst))
	}
	m, err := ParseMiddle(first)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Clients) != 16 {
		t.Errorf("%d auth clients", len(m.Clients))
	}
	// auth-client D0Bz0OlEMCg or3nS3ScSPYfLJuP9osGiQ B40RdIWhw7kdA7lt3KJPvQ
	found := false
	for _, c := range m.Clients {
		if c.ID == [8]byte{0x0f, 0x40, 0x73, 0xd0, 0xe9, 0x44, 0x30, 0x28} {
			found = true
			if c.IV[0] != 0xa2 || c.EncryptedCookie[0] != 0x07 {
				t.Errorf("entry %+v", c)
			}
		}
	}
	if !found {
		t.Error("auth-client D0Bz0OlEMCg missing")
	}
	second, err := DecryptLayer(m.Encrypted, o.BlindedKey, sub, 42, EncryptedConst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(second, readFile(t, "hidden_service_v3_inner_layer")) {
		t.Fatal("second layer differs")
	}

	d, err := Decode(doc, a.PublicKey(), bp, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	in := d.Inner
	if len(in.Create2Formats) != 1 || in.Create2Formats[0] != 2 || !in.SingleOnion ||
		len(in.IntroAuthRequired) != 1 || in.IntroAuthRequired[0] != "ed25519" {
		t.Errorf("inner header %+v", in)
	}
	if len(in.IntroPoints) != 4 {
		t.Fatalf("%d intro points, skipped %v", len(in.IntroPoints), in.Skipped)
	}
	ip := in.IntroPoints[0]
	if len(ip.LinkSpecs) != 2 || ip.LinkSpecs[0].Type != cell.LinkSpecLegacyID ||
		string(ip.LinkSpecs[0].Data) != "CCCCCCCCCCCCCCCCCCCC" {
		t.Errorf("link specs %+v", ip.LinkSpecs)
	}
	if ap, err := ip.LinkSpecs[1].AddrPort(); err != nil || ap.String() != "1.2.3.4:9001" {
		t.Errorf("addr %v %v", ap, err)
	}
	if ip.OnionKey != [32]byte{} || ip.EncKey != [32]byte{} {
		t.Error("keys not zero")
	}
	if !ip.AuthKeyCert.SignedWithKey.Equal(o.SigningKey) {
		t.Error("auth key cert signer")
	}
}

func TestStemIntroPoint(t *testing.T) {
	raw := readFile(t, "hidden_service_v3_intro_point")
	// The stem intro point carries legacy-key and legacy-key-cert, which are
	// ignored; its certificates are signed by another signing key.
	c, err := parseIntroPointNoSig(raw, stemNow(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.LinkSpecs) == 0 || c.AuthKey == nil {
		t.Errorf("intro point %+v", c)
	}
}

// parseIntroPointNoSig parses with the signing key taken from the auth-key
// certificate itself.
func parseIntroPointNoSig(raw []byte, now time.Time) (*IntroPoint, error) {
	_, err := parseIntroPoint(raw, nil, now)
	if err == nil {
		return nil, errors.New("accepted certificates with a nil signing key")
	}
	// Find the signer and parse again.
	for _, sk := range signersIn(raw) {
		if ip, err := parseIntroPoint(raw, sk, now); err == nil {
			return ip, nil
		}
	}
	return nil, err
}

func TestStemErrors(t *testing.T) {
	doc := readFile(t, "hidden_service_v3")
	now := stemNow(t)
	a, _ := addr.Parse(stemAddr)
	other, _ := keys.GenerateKey()
	if _, err := Decode(doc, other.Public(), nil, nil, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("wrong identity: %v", err)
	}
	if _, err := Decode(doc, a.PublicKey(), other.Public(), nil, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("wrong blinded key: %v", err)
	}
	if _, err := Decode(doc, a.PublicKey(), nil, nil, now.Add(1000*time.Hour)); !errors.Is(err, ErrInvalid) {
		t.Errorf("expired: %v", err)
	}
	bad := bytes.Replace(doc, []byte("revision-counter 42"), []byte("revision-counter 43"), 1)
	if _, err := Decode(bad, a.PublicKey(), nil, nil, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("tampered: %v", err)
	}
	if _, err := ParseOuter(bytes.TrimSuffix(doc, []byte("\n")), now); err != nil {
		t.Errorf("without final newline: %v", err)
	}
	if _, err := ParseOuter(doc[:len(doc)/2], now); !errors.Is(err, ErrInvalid) {
		t.Errorf("truncated: %v", err)
	}
}

func signersIn(raw []byte) [][]byte {
	var out [][]byte
	s := string(raw)
	for {
		i := bytes.Index([]byte(s), []byte("-----BEGIN ED25519 CERT-----\n"))
		if i < 0 {
			return out
		}
		s = s[i+29:]
		j := bytes.Index([]byte(s), []byte("-----END"))
		b := make([]byte, 200)
		n, err := decodeBase64Any(b, bytes.ReplaceAll([]byte(s[:j]), []byte("\n"), nil))
		if err == nil && n >= 76 && b[39] >= 1 {
			out = append(out, b[44:76])
		}
	}
}
