package hsdir

import (
	"testing"
	"time"

	"tinytor/onion/keys"
	"tinytor/tor/dir"
	"tinytor/tor/path"
)

func TestUsable(t *testing.T) {
	v3, err := dir.ParseProtocols("HSDir=1-2 HSIntro=4-5")
	if err != nil {
		t.Fatal(err)
	}
	v2, _ := dir.ParseProtocols("HSDir=1 HSIntro=3-4")
	var none dir.Protocols // an empty "pr" line
	for _, c := range []struct {
		name  string
		flags dir.Flags
		pr    *dir.Protocols
		ed    bool
		want  bool
	}{
		{"v3 HSDir", dir.FlagHSDir, &v3, true, true},
		{"no HSDir flag", 0, &v3, true, false},
		{"only HSDir=1", dir.FlagHSDir, &v2, true, false},
		{"no pr line", dir.FlagHSDir, nil, true, false},
		{"empty pr line", dir.FlagHSDir, &none, true, false},
		{"no ed25519 identity", dir.FlagHSDir, &v3, false, false},
	} {
		n := &path.Node{Relay: &dir.Relay{Flags: c.flags, Protocols: c.pr}, MD: &dir.Microdesc{HasEd25519: c.ed}}
		if got := Usable(n); got != c.want {
			t.Errorf("%s: Usable = %v, want %v", c.name, got, c.want)
		}
	}
	if Usable(&path.Node{Relay: &dir.Relay{Flags: dir.FlagHSDir, Protocols: &v3}}) {
		t.Error("a node without a microdescriptor is usable")
	}
}

func TestRing(t *testing.T) {
	v3, _ := dir.ParseProtocols("HSDir=2")
	cons := &dir.Consensus{}
	mds := map[[32]byte]*dir.Microdesc{}
	for i := range 4 {
		r := dir.Relay{Flags: dir.FlagHSDir, Protocols: &v3}
		if i == 2 {
			r.Protocols = nil // no "pr" line: not on the ring (C tor)
		}
		r.Identity[0], r.Microdesc[0] = byte(i+1), byte(i+1)
		cons.Relays = append(cons.Relays, r)
		md := &dir.Microdesc{HasNtorKey: true, HasEd25519: true}
		md.Ed25519ID[0] = byte(i + 1)
		mds[r.Microdesc] = md
	}
	got := Ring(path.NewDir(cons, mds))
	if len(got) != 3 || got[0].RSAID[0] != 1 || got[1].RSAID[0] != 2 || got[2].RSAID[0] != 4 || got[2].Ed25519ID[0] != 4 {
		t.Errorf("Ring = %+v, want relays 1, 2 and 4", got)
	}
}

func TestTimeParams(t *testing.T) {
	va := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	cons := &dir.Consensus{ValidAfter: va, FreshUntil: va.Add(time.Hour)}
	p, srvs, err := TimeParams(cons, false)
	if err != nil {
		t.Fatal(err)
	}
	if p != keys.LivePeriods() || srvs.Current != nil || srvs.Previous != nil {
		t.Errorf("live defaults: %+v %+v", p, srvs)
	}
	cons.Params = map[string]int32{"hsdir_interval": 10}
	cons.SharedRandCurrent = &dir.SharedRandom{Value: [32]byte{1}}
	cons.SharedRandPrevious = &dir.SharedRandom{Value: [32]byte{2}}
	p, srvs, err = TimeParams(cons, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.LengthMinutes != keys.MinPeriodMinutes || srvs.Current == nil || srvs.Current[0] != 1 || srvs.Previous[0] != 2 {
		t.Errorf("clamped interval and SRVs: %+v %+v", p, srvs)
	}
	// A test network: one SRV run of 24 voting intervals, whatever the parameter says.
	cons.FreshUntil = va.Add(20 * time.Second)
	if p, _, _ = TimeParams(cons, true); p.LengthMinutes != 8 {
		t.Errorf("testing period %d minutes, want 8", p.LengthMinutes)
	}
	cons.FreshUntil = va
	if _, _, err := TimeParams(cons, false); err == nil {
		t.Error("no error for a zero voting interval")
	}
}
