package link

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"tinytor/tor/cell"
	"tinytor/tor/cert"
)

// relayKeys are the long-term and link keys of a fake relay.
type relayKeys struct {
	rsa     *rsa.PrivateKey
	edID    ed25519.PrivateKey
	edSign  ed25519.PrivateKey
	tlsCert tls.Certificate
}

var (
	keysOnce sync.Once
	keys     relayKeys
)

// testKeys returns one set of relay keys shared by the tests (RSA key
// generation is slow).
func testKeys(t testing.TB) relayKeys {
	keysOnce.Do(func() {
		var err error
		keys.rsa, err = rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			panic(err)
		}
		_, keys.edID, _ = ed25519.GenerateKey(rand.Reader)
		_, keys.edSign, _ = ed25519.GenerateKey(rand.Reader)
		keys.tlsCert = newTLSCert()
	})
	return keys
}

func newTLSCert() tls.Certificate {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "www.example.net"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

func (k relayKeys) identity() Identity {
	return Identity{RSA: cert.RSAFingerprint(&k.rsa.PublicKey), Ed25519: [32]byte(k.edID.Public().(ed25519.PublicKey))}
}

// relayOpts selects what the fake relay does wrong.
type relayOpts struct {
	expiredSigning bool          // identity->signing certificate expired
	expiredRSA     bool          // RSA identity certificate long expired
	tlsMismatch    bool          // signing->link certifies another TLS certificate
	badCrossSig    bool          // cross-certificate signature corrupted
	omit           cert.Type     // leave this certificate out
	versions       []uint16      // offered link versions; nil means 3, 4, 5
	netinfoOffset  time.Duration // added to the relay's NETINFO time
}

func (k relayKeys) certsCell(t testing.TB, o relayOpts) []byte {
	now := time.Now()
	rsaDER, err := cert.NewRSAIdentity(k.rsa, now.Add(-24*time.Hour), now.Add(365*24*time.Hour))
	if o.expiredRSA {
		rsaDER, err = cert.NewRSAIdentity(k.rsa, now.Add(-400*24*time.Hour), now.Add(-3*24*time.Hour))
	}
	if err != nil {
		t.Fatal(err)
	}
	exp := now.Add(48 * time.Hour)
	signExp := exp
	if o.expiredSigning {
		signExp = now.Add(-2 * time.Hour)
	}
	idSign, err := cert.NewEd25519(cert.Ed25519Template{Type: cert.TypeIdentitySigning, Expiration: signExp, KeyType: cert.KeyEd25519,
		CertifiedKey: [32]byte(k.edSign.Public().(ed25519.PublicKey)), IncludeSigner: true}, k.edID)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(k.tlsCert.Certificate[0])
	if o.tlsMismatch {
		digest[0] ^= 1
	}
	signLink, err := cert.NewEd25519(cert.Ed25519Template{Type: cert.TypeSigningLink, Expiration: exp, KeyType: cert.KeySHA256OfX509,
		CertifiedKey: digest}, k.edSign)
	if err != nil {
		t.Fatal(err)
	}
	cross, err := cert.NewCrossCert([32]byte(k.edID.Public().(ed25519.PublicKey)), exp, k.rsa)
	if err != nil {
		t.Fatal(err)
	}
	if o.badCrossSig {
		cross[len(cross)-5] ^= 0x40
	}
	m := CertsMsg{
		cert.TypeRSAIdentity:     rsaDER,
		cert.TypeIdentitySigning: idSign,
		cert.TypeSigningLink:     signLink,
		cert.TypeRSACrossCert:    cross,
	}
	if o.omit != 0 {
		delete(m, o.omit)
	}
	return m.AppendTo(nil)
}

// relayConn is the fake relay's side of an established channel.
type relayConn struct {
	conn net.Conn
	r    *cell.Reader
	w    *cell.Writer
	// clientNetinfo is the NETINFO the client sent.
	clientNetinfo cell.NetinfoMsg
}

func (rc *relayConn) send(t testing.TB, c *cell.Cell) {
	t.Helper()
	if err := rc.w.WriteCell(c); err != nil {
		t.Error(err)
	}
	if err := rc.w.Flush(); err != nil {
		t.Error(err)
	}
}

// fakeRelay is a TLS listener on loopback that speaks the responder side
// of the link handshake.
type fakeRelay struct {
	ln    net.Listener
	keys  relayKeys
	opts  relayOpts
	conns chan *relayConn
	errs  chan error
	wg    sync.WaitGroup
}

func startRelay(t *testing.T, o relayOpts) *fakeRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRelay{ln: ln, keys: testKeys(t), opts: o, conns: make(chan *relayConn, 4), errs: make(chan error, 4)}
	certs := f.keys.certsCell(t, o)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				rc, err := f.handshake(c, certs)
				if err != nil {
					c.Close()
					select {
					case f.errs <- err:
					default:
					}
					return
				}
				f.conns <- rc
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.wg.Wait()
	})
	return f
}

func (f *fakeRelay) addr() string { return f.ln.Addr().String() }

func (f *fakeRelay) handshake(raw net.Conn, certs []byte) (*relayConn, error) {
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	conn := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{f.keys.tlsCert}})
	if err := conn.Handshake(); err != nil {
		return nil, err
	}
	r := cell.NewReader(conn, nil)
	w := cell.NewWriter(conn)
	if _, v, err := r.ReadCell(); err != nil {
		return nil, err
	} else if v == nil || v.Command != cell.Versions {
		return nil, errors.New("fake relay: client sent no VERSIONS")
	}
	vs := f.opts.versions
	if vs == nil {
		vs = []uint16{3, 4, 5}
	}
	w.WriteVarCell(&cell.VarCell{Command: cell.Versions, Payload: cell.EncodeVersions(vs...)})
	w.SetLinkVersion(4)
	r.SetLinkVersion(4)
	w.WriteVarCell(&cell.VarCell{Command: cell.VPadding, Payload: make([]byte, 3)})
	w.WriteVarCell(&cell.VarCell{Command: cell.Certs, Payload: certs})
	w.WriteVarCell(&cell.VarCell{Command: cell.AuthChallenge, Payload: append(make([]byte, 32), 0, 2, 0, 1, 0, 3)})
	ts := time.Now().Add(f.opts.netinfoOffset)
	lo := netip.MustParseAddr("127.0.0.1")
	ni := cell.NetinfoMsg{Time: uint32(ts.Unix()), OtherAddr: lo, MyAddrs: []netip.Addr{lo}}
	c := &cell.Cell{Command: cell.Netinfo}
	ni.MarshalTo(&c.Payload)
	w.WriteCell(c)
	if err := w.Flush(); err != nil {
		return nil, err
	}
	rc := &relayConn{conn: conn, r: r, w: w}
	fixed, _, err := r.ReadCell()
	if err != nil {
		return nil, err
	}
	if fixed == nil || fixed.Command != cell.Netinfo {
		return nil, errors.New("fake relay: client sent no NETINFO")
	}
	rc.clientNetinfo, _ = cell.ParseNetinfo(fixed.Payload[:])
	raw.SetDeadline(time.Time{})
	return rc, nil
}

// newSilentListener returns the address of a loopback listener that
// accepts connections and never writes.
func newSilentListener(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}
