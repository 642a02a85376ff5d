package ctl

import (
	"testing"

	"tinytor/tor/control"
)

func FuzzOnionPort(f *testing.F) {
	for _, s := range []string{"", "8080", "127.0.0.1:80", "[::1]:443", "unix:/run/x", "unix:", "0", "localhost:80", "99999"} {
		f.Add(uint16(80), s)
	}
	f.Add(uint16(0), "")
	f.Fuzz(func(t *testing.T, virt uint16, target string) {
		hp, ok := onionPort(control.OnionPort{Virt: virt, Target: target})
		if !ok {
			return
		}
		if hp.VirtualPort != virt || (hp.Unix == "") == !hp.Target.IsValid() || (hp.Unix == "" && hp.Target.Port() == 0) {
			t.Fatalf("onionPort(%d, %q) = %+v", virt, target, hp)
		}
	})
}
