package desc

import (
	"testing"
	"time"

	"tinytor/onion/addr"
)

// ctorPoWAddr published testdata/ctor_pow_descriptor: C tor 0.4.9.11
// with HiddenServicePoWDefensesEnabled 1 on the test network, fetched
// with GETINFO hs/service/desc/id/ right after its first upload
// (2026-12-03 16:32 UTC).
const ctorPoWAddr = "nojiazr6ophau6p47im34uwmgxxfx5xbhs4np4zbrmp5nn3vlhnipmad.onion"

func TestCTorPoWDescriptor(t *testing.T) {
	a, err := addr.Parse(ctorPoWAddr)
	if err != nil {
		t.Fatal(err)
	}
	doc := readFile(t, "ctor_pow_descriptor")
	published := time.Date(2026, 12, 3, 16, 32, 13, 0, time.UTC)
	d, err := Decode(doc, a.PublicKey(), nil, nil, published)
	if err != nil {
		t.Fatal(err)
	}
	p := d.Inner.PoW
	if p == nil {
		t.Fatal("no pow-params in the second layer")
	}
	t.Logf("seed %x effort %d expires %s", p.Seed, p.SuggestedEffort, p.Expires)
	if p.Seed == [32]byte{} {
		t.Error("zero seed")
	}
	// C tor rotates the seed 105 to 120 minutes after making it
	// (HS_SERVICE_POW_SEED_ROTATE_TIME_MIN/MAX); it made it at 16:32:13.
	if p.Expires.Before(published.Add(105*time.Minute)) || p.Expires.After(published.Add(120*time.Minute)) {
		t.Errorf("expires %s, want 105-120 min after %s", p.Expires, published)
	}
	if p.Expires != time.Date(2026, 12, 3, 18, 23, 7, 0, time.UTC) {
		t.Errorf("expires %s, the line says 2026-12-03T18:23:07", p.Expires)
	}
	if p.SuggestedEffort != 0 {
		t.Errorf("suggested effort %d, want 0 (a service that just started)", p.SuggestedEffort)
	}
}
