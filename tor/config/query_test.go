package config

import (
	"errors"
	"slices"
	"testing"
)

func TestValuesAndDump(t *testing.T) {
	env := Env{Home: "/home/u"}
	torrc, err := Lex([]byte("SocksPort 9150\nSocksPort 9151 IsolateDestAddr\nControlPort 9051\nLog \"notice file /tmp/a b#c\"\n"), "torrc")
	if err != nil {
		t.Fatal(err)
	}
	ctl := []Line{{Key: "socksport", Value: "9999"}, {Key: "ControlPort", Command: Clear}}
	cases := []struct {
		key    string
		layers [][]Line
		name   string
		want   []string
	}{
		{"socksport", [][]Line{nil, torrc}, "SocksPort", []string{"9150", "9151 IsolateDestAddr"}},
		{"SocksPort", [][]Line{nil, torrc, ctl}, "SocksPort", []string{"9999"}},
		{"ControlPort", [][]Line{nil, torrc}, "ControlPort", []string{"9051"}},
		{"ControlPort", [][]Line{nil, torrc, ctl}, "ControlPort", nil},
		{"CookieAuthFile", [][]Line{nil, torrc}, "CookieAuthFile", []string{"/home/u/.tinytor/control_auth_cookie"}},
		{"SafeSocks", [][]Line{nil, torrc}, "SafeSocks", []string{"0"}},
		// Only the last line of a single-valued option is in force.
		{"User", [][]Line{{{Key: "User", Value: "a"}}, {{Key: "User", Value: "b"}, {Key: "user", Value: "c"}}}, "User", []string{"c"}},
		{"User", [][]Line{{{Key: "User", Value: "a"}}, {{Key: "User", Value: ""}}}, "User", nil},
	}
	for _, c := range cases {
		name, vals, err := Values(env, c.key, c.layers...)
		if err != nil || name != c.name || !slices.Equal(vals, c.want) {
			t.Errorf("Values(%s) = %q %q %v, want %q %q", c.key, name, vals, err, c.name, c.want)
		}
	}
	if _, _, err := Values(env, "NoSuchOption"); !errors.Is(err, ErrUnknownOption) || !IsUnknownOption(err) {
		t.Errorf("unknown option: err %v", err)
	}
	if _, _, err := Values(env, "ORPort"); !errors.Is(err, ErrRelayOption) {
		t.Errorf("relay option: err %v", err)
	}

	lines, err := Dump(torrc, ctl)
	if err != nil {
		t.Fatal(err)
	}
	text := FormatLines(lines)
	back, err := Lex([]byte(text), "saved")
	if err != nil {
		t.Fatalf("saved torrc does not lex: %v\n%s", err, text)
	}
	var got []string
	for _, l := range back {
		got = append(got, l.Key+"="+l.Value)
	}
	want := []string{"SocksPort=9999", "Log=notice file /tmp/a b#c"}
	if !slices.Equal(got, want) {
		t.Errorf("Dump round trip = %q, want %q\n%s", got, want, text)
	}
	if _, err := Build(env, back); err != nil {
		t.Errorf("saved torrc does not build: %v", err)
	}
	if lines, err := Dump([]Line{{Key: "User", Value: "a"}}, []Line{{Key: "user", Value: "b"}, {Key: "User", Value: "c"}}); err != nil ||
		!slices.Equal(lines, []Line{{Key: "User", Value: "c"}}) {
		t.Errorf("Dump of a repeated single-valued option = %v, %v", lines, err)
	}
}

func TestOptionsTable(t *testing.T) {
	opts := Options()
	if len(opts) < 10 {
		t.Fatalf("only %d options", len(opts))
	}
	o, err := Option("hashedcontrolpassword")
	if err != nil || o.Name != "HashedControlPassword" || !o.List {
		t.Errorf("Option = %+v, %v", o, err)
	}
	if (Sources{}).TorrcPath() != DefaultTorrc || (Sources{Torrc: "/x"}).TorrcPath() != "/x" {
		t.Error("TorrcPath")
	}
}
