package config

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// HiddenService is one onion service: a HiddenServiceDir line and the
// HiddenService* lines that follow it, grouped as C tor does.
type HiddenService struct {
	Dir                    string              // HiddenServiceDir: keys and hostname live here
	Ports                  []HiddenServicePort // HiddenServicePort lines (at least one)
	Version                int                 // HiddenServiceVersion: only 3
	NumIntroductionPoints  int                 // HiddenServiceNumIntroductionPoints: 0..20, default 3
	MaxStreams             int                 // HiddenServiceMaxStreams: per rendezvous circuit, 0 = unlimited
	MaxStreamsCloseCircuit bool                // HiddenServiceMaxStreamsCloseCircuit: close the circuit when MaxStreams is hit
	DirGroupReadable       bool                // HiddenServiceDirGroupReadable: make Dir group-readable
	// Proof-of-work defenses (proposal 327): HiddenServicePoWDefensesEnabled
	// (default 0), HiddenServicePoWQueueRate (introductions answered per
	// second, default 250) and HiddenServicePoWQueueBurst (default 2500).
	PoWDefensesEnabled bool
	PoWQueueRate       int
	PoWQueueBurst      int
}

// HiddenServicePort maps a virtual port of the onion service to a local
// target: "VIRTPORT [TARGET]" where TARGET is PORT, ADDR:PORT or
// unix:PATH, and defaults to 127.0.0.1:VIRTPORT.
type HiddenServicePort struct {
	VirtualPort uint16
	Target      netip.AddrPort // TCP target
	Unix        string         // Unix socket target, instead of Target
}

func parseHiddenServicePort(v string) (p HiddenServicePort, err error) {
	v = strings.TrimSpace(v)
	virt, t := v, ""
	if i := strings.IndexAny(v, " \t"); i >= 0 {
		virt, t = v[:i], strings.TrimSpace(v[i:])
	}
	if virt == "" || (len(fields(t)) > 1 && !strings.HasPrefix(t, `unix:"`)) {
		return p, badValue("bad HiddenServicePort %q: want VIRTPORT [TARGET]", v)
	}
	vp, err := parsePort(virt)
	if err != nil {
		return p, wrapErr("bad virtual port in HiddenServicePort", "", err)
	}
	p.VirtualPort = vp
	if t == "" {
		p.Target = netip.AddrPortFrom(localhost, vp)
		return p, nil
	}
	if path, ok := strings.CutPrefix(t, "unix:"); ok {
		if strings.HasPrefix(path, `"`) {
			u, n, err := unquote(path)
			if err != nil || n != len(path) {
				return p, badValue("bad unix socket path in HiddenServicePort %q", v)
			}
			path = u
		}
		if path == "" {
			return p, errors.New("empty unix socket path in HiddenServicePort")
		}
		p.Unix = path
		return p, nil
	}
	if !strings.ContainsAny(t, ":[") {
		port, err := parsePort(t)
		if err != nil {
			return p, wrapErr("bad target port in HiddenServicePort", "", err)
		}
		p.Target = netip.AddrPortFrom(localhost, port)
		return p, nil
	}
	ap, err := parseAddrPort(t)
	if err != nil {
		return p, wrapErr("bad target in HiddenServicePort", "", err)
	}
	p.Target = ap
	return p, nil
}

// service returns the service a line of the HiddenService* option opt
// belongs to: the last one. Only HiddenServicePort may be repeated in a
// service.
func (b *builder) service(opt *option) (*HiddenService, error) {
	n := len(b.c.HiddenServices)
	if n == 0 {
		return nil, errors.New(opt.name + " with no preceding HiddenServiceDir directive")
	}
	hs := &b.c.HiddenServices[n-1]
	if opt.name != "HiddenServicePort" {
		if b.hsSeen[n-1][opt.name] {
			return nil, errors.New(opt.name + " given more than once for HiddenServiceDir " + hs.Dir)
		}
		b.hsSeen[n-1][opt.name] = true
	}
	return hs, nil
}

// hsDirValue starts a service.
func hsDirValue(b *builder, v string) (any, error) {
	for _, hs := range b.c.HiddenServices {
		if hs.Dir == v {
			return nil, errors.New("another hidden service is already configured for directory " + v)
		}
	}
	b.c.HiddenServices = append(b.c.HiddenServices, HiddenService{
		Dir: v, Version: 3, NumIntroductionPoints: 3, PoWQueueRate: 250, PoWQueueBurst: 2500,
	})
	b.hsLines = append(b.hsLines, b.l)
	b.hsSeen = append(b.hsSeen, map[string]bool{})
	return nil, nil
}

func hsPortValue(_ *builder, v string) (any, error) {
	p, err := parseHiddenServicePort(v)
	return p, err
}

func hsVersionValue(_ *builder, v string) (any, error) {
	if v != "3" {
		return nil, badValue("HiddenServiceVersion %q is not supported: only version 3 onion services exist", v)
	}
	return 3, nil
}

// posIntValue is C tor's POSINT: 0 to INT_MAX.
func posIntValue(_ *builder, v string) (any, error) {
	n, err := parseUint(v, 0, 1<<31-1)
	return int(n), err
}

func introPointsValue(_ *builder, v string) (any, error) {
	n, err := parseUint(v, 0, 20)
	return int(n), err
}

// checkServices validates the services once all lines are read.
func (b *builder) checkServices() error {
	for i := range b.c.HiddenServices {
		hs := &b.c.HiddenServices[i]
		if len(hs.Ports) == 0 {
			return errAt(b.hsLines[i], "HiddenServiceDir", errors.New("hidden service ("+hs.Dir+") with no ports configured"))
		}
		if hs.PoWDefensesEnabled && hs.PoWQueueBurst < hs.PoWQueueRate {
			return errAt(b.hsLines[i], "HiddenServiceDir", errors.New("hidden service ("+hs.Dir+") PoW queue burst ("+
				strconv.Itoa(hs.PoWQueueBurst)+") can not be smaller than the rate value ("+strconv.Itoa(hs.PoWQueueRate)+")"))
		}
	}
	return nil
}
