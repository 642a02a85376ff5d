package config

import (
	"errors"
	"fmt"
	"net/netip"
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
}

// HiddenServicePort maps a virtual port of the onion service to a local
// target: "VIRTPORT [TARGET]" where TARGET is PORT, ADDR:PORT or
// unix:PATH, and defaults to 127.0.0.1:VIRTPORT.
type HiddenServicePort struct {
	VirtualPort uint16
	Target      netip.AddrPort // TCP target
	Unix        string         // Unix socket target, instead of Target
}

func parseHiddenServicePort(v string) (HiddenServicePort, error) {
	var p HiddenServicePort
	v = strings.TrimSpace(v)
	virt, t := v, ""
	if i := strings.IndexAny(v, " \t"); i >= 0 {
		virt, t = v[:i], strings.TrimSpace(v[i:])
	}
	if virt == "" || (len(fields(t)) > 1 && !strings.HasPrefix(t, `unix:"`)) {
		return p, fmt.Errorf("bad HiddenServicePort %q: want VIRTPORT [TARGET]", v)
	}
	vp, err := parsePort(virt)
	if err != nil {
		return p, fmt.Errorf("bad virtual port in HiddenServicePort: %w", err)
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
				return p, fmt.Errorf("bad unix socket path in HiddenServicePort %q", v)
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
			return p, fmt.Errorf("bad target port in HiddenServicePort: %w", err)
		}
		p.Target = netip.AddrPortFrom(localhost, port)
		return p, nil
	}
	ap, err := parseAddrPort(t)
	if err != nil {
		return p, fmt.Errorf("bad target in HiddenServicePort: %w", err)
	}
	p.Target = ap
	return p, nil
}

// lastService returns the service the HiddenService* line key belongs to.
func (b *builder) lastService(key string) (*HiddenService, error) {
	if len(b.c.HiddenServices) == 0 {
		return nil, fmt.Errorf("%s with no preceding HiddenServiceDir directive", key)
	}
	hs := &b.c.HiddenServices[len(b.c.HiddenServices)-1]
	return hs, nil
}

// hsSingle returns the current service after checking that key is not
// repeated within it.
func (b *builder) hsSingle(key string) (*HiddenService, error) {
	hs, err := b.lastService(key)
	if err != nil {
		return nil, err
	}
	seen := b.hsSeen[len(b.hsSeen)-1]
	if seen[key] {
		return nil, fmt.Errorf("%s given more than once for HiddenServiceDir %s", key, hs.Dir)
	}
	seen[key] = true
	return hs, nil
}

func (b *builder) hsDir(v string) error {
	for _, hs := range b.c.HiddenServices {
		if hs.Dir == v {
			return fmt.Errorf("another hidden service is already configured for directory %s", v)
		}
	}
	b.c.HiddenServices = append(b.c.HiddenServices, HiddenService{
		Dir: v, Version: 3, NumIntroductionPoints: 3,
	})
	b.hsLines = append(b.hsLines, b.l)
	b.hsSeen = append(b.hsSeen, map[string]bool{})
	return nil
}

func (b *builder) hsPort(v string) error {
	hs, err := b.lastService("HiddenServicePort")
	if err != nil {
		return err
	}
	p, err := parseHiddenServicePort(v)
	if err != nil {
		return err
	}
	hs.Ports = append(hs.Ports, p)
	return nil
}

func (b *builder) hsVersion(v string) error {
	hs, err := b.hsSingle("HiddenServiceVersion")
	if err != nil {
		return err
	}
	if v != "3" {
		return fmt.Errorf("HiddenServiceVersion %q is not supported: only version 3 onion services exist", v)
	}
	hs.Version = 3
	return nil
}

func (b *builder) hsNumIntro(v string) error {
	hs, err := b.hsSingle("HiddenServiceNumIntroductionPoints")
	if err != nil {
		return err
	}
	n, err := parseUint(v, 0, 20)
	if err != nil {
		return err
	}
	hs.NumIntroductionPoints = int(n)
	return nil
}

func (b *builder) hsMaxStreams(v string) error {
	hs, err := b.hsSingle("HiddenServiceMaxStreams")
	if err != nil {
		return err
	}
	n, err := parseUint(v, 0, 65535)
	if err != nil {
		return err
	}
	hs.MaxStreams = int(n)
	return nil
}

func hsBool(key string, field func(*HiddenService) *bool) func(*builder, string) error {
	return func(b *builder, v string) error {
		hs, err := b.hsSingle(key)
		if err != nil {
			return err
		}
		x, err := parseBool(v)
		if err != nil {
			return err
		}
		*field(hs) = x
		return nil
	}
}

// checkServices validates the services once all lines are read.
func (b *builder) checkServices() error {
	for i := range b.c.HiddenServices {
		hs := &b.c.HiddenServices[i]
		if len(hs.Ports) == 0 {
			return errAt(b.hsLines[i], "HiddenServiceDir", fmt.Errorf("hidden service (%s) with no ports configured", hs.Dir))
		}
	}
	return nil
}
