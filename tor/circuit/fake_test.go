package circuit

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha3"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/curve25519"

	"tinytor/tor/cell"
	"tinytor/tor/circuit/handshake"
	"tinytor/tor/circuit/relaycrypto"
)

// This file is a test-only fake of the network behind a channel: a chain
// of relays that speak the server side of CREATE_FAST, ntor and the relay
// protocol, with flow control and authenticated SENDMEs.

// fakeRelayKeys is the identity and ntor key of one fake relay.
type fakeRelayKeys struct {
	id      [20]byte
	ed      [32]byte // Ed25519 identity (only used as ntor v3's ID)
	ntorSec [32]byte
	ntorPub [32]byte
}

func newFakeRelayKeys(t testing.TB, n byte) *fakeRelayKeys {
	k := &fakeRelayKeys{}
	k.id[0] = n
	rand.Read(k.id[1:])
	rand.Read(k.ed[:])
	rand.Read(k.ntorSec[:])
	pub, err := curve25519.X25519(k.ntorSec[:], curve25519.Basepoint)
	if err != nil {
		t.Fatal(err)
	}
	copy(k.ntorPub[:], pub)
	return k
}

func (k *fakeRelayKeys) hopInfo() HopInfo {
	return HopInfo{RSAID: k.id, Ed25519ID: k.ed, NtorKey: k.ntorPub}
}

// ntorServer answers an ntor onionskin (server side of tor-spec 5.1.4).
func ntorServer(skin []byte, k *fakeRelayKeys) ([]byte, *handshake.KeyMaterial, error) {
	if len(skin) != handshake.NtorClientLen || string(skin[:20]) != string(k.id[:]) || string(skin[20:52]) != string(k.ntorPub[:]) {
		return nil, nil, fmt.Errorf("onionskin not for this relay")
	}
	x := skin[52:84]
	var ysec [32]byte
	rand.Read(ysec[:])
	y, _ := curve25519.X25519(ysec[:], curve25519.Basepoint)
	xy, err := curve25519.X25519(ysec[:], x)
	if err != nil {
		return nil, nil, err
	}
	xb, err := curve25519.X25519(k.ntorSec[:], x)
	if err != nil {
		return nil, nil, err
	}
	const proto = "ntor-curve25519-sha256-1"
	var secret []byte
	for _, p := range [][]byte{xy, xb, k.id[:], k.ntorPub[:], x, y, []byte(proto)} {
		secret = append(secret, p...)
	}
	mac := func(key string, msg []byte) []byte {
		m := hmac.New(sha256.New, []byte(proto+key))
		m.Write(msg)
		return m.Sum(nil)
	}
	verify := mac(":verify", secret)
	var authIn []byte
	for _, p := range [][]byte{verify, k.id[:], k.ntorPub[:], y, x, []byte(proto + "Server")} {
		authIn = append(authIn, p...)
	}
	reply := append(append([]byte{}, y...), mac(":mac", authIn)...)
	km, err := handshake.KDFRFC5869(secret, []byte(proto+":key_extract"), []byte(proto+":key_expand"), handshake.KeyMaterialLen)
	if err != nil {
		return nil, nil, err
	}
	keys, err := handshake.KeyMaterialFromRFC5869(km)
	return reply, keys, err
}

type fakeStream struct {
	hop            int
	packageWindow  int
	deliverWindow  int
	out            []byte // data waiting to go to the client
	endAfterOut    bool   // send END DONE when out is drained
	ended          bool
	received       []byte
	receivedCells  int
	stopReading    bool // do not echo
	sendmesFromCli int
	xoff           bool // the client sent XOFF: do not send
	xoffs, xons    int  // flow control cells from the client
	xonRates       []uint32
}

type fakeHop struct {
	keys          *fakeRelayKeys
	layer         *relaycrypto.Layer
	packageWindow int
	deliverWindow int
	sentDigests   [][20]byte
	clientSendmes atomic.Int32
	// Congestion control (negotiated with ntor v3): the hop sends while
	// inflight < cwnd and answers every inc DATA cells with a SENDME.
	cc           bool
	inc          int
	cwnd         int
	inflight     int
	recvCount    int
	ccRequested  bool // the client's ntor v3 message asked for it
	sendmesToCli atomic.Int32
}

// fakeNet is the channel plus the relays behind it.
type fakeNet struct {
	t      testing.TB
	mu     sync.Mutex
	h      Handler
	circID uint32
	closed bool // CloseCircuit called
	relays map[[20]byte]*fakeRelayKeys
	first  *fakeRelayKeys

	in   chan *cell.Cell
	done chan struct{}

	// Relay-side state, owned by the relay goroutine.
	hops    []*fakeHop
	streams map[uint16]*fakeStream
	early   int

	// Behaviour knobs (set before use).
	endReasonForPort map[uint16]cell.EndReason
	downloadForPort  map[uint16]int // bytes to send then END DONE
	destroyOnCreate  bool
	truncateOnExtend bool
	sendV0Sendme     bool
	noStreamSendmes  bool
	// ccSendmeInc, if not 0, is what the relays answer a congestion
	// control request with; ccCwnd is their congestion window (default
	// 1000 cells).
	ccSendmeInc int
	ccCwnd      int
	// ccHoldAcks makes congestion-controlled hops keep the SENDMEs that
	// answer the client's DATA in heldAcks (the test sends them later, on
	// the relay goroutine) instead of sending them.
	ccHoldAcks bool
	heldAcks   []heldAck
	// clock, if set, is the test's congestion control clock: held acks
	// note its value when their cell arrived.
	clock *atomic.Int64
	// noEcho makes streams opened with BEGIN swallow the client's data.
	noEcho bool
	// xonRates are the rates of the client's XONs (relay goroutine).
	xonRates []uint32

	// discard makes the relays drop (and recycle into pool) every cell.
	discard atomic.Bool
	// pool is the client's cell pool: the relays take the cells they
	// send to the client from it, as the channel's read loop does.
	pool *cell.Pool

	// Observations.
	streamSendmes atomic.Int32
	windowFull    chan uint16 // a stream received a whole window of cells
	destroys      chan cell.DestroyReason
	ends          chan cell.EndReason
	violations    chan string
	connecteds    chan uint16 // CONNECTED from the client (accepted streams)
	do            chan func() // run on the relay goroutine

	// onData, if set, sees each DATA cell's body and padding (on the relay
	// goroutine; set before use).
	onData func(body, pad []byte)
}

func newFakeNet(t testing.TB, relays ...*fakeRelayKeys) *fakeNet {
	f := &fakeNet{
		t:                t,
		relays:           map[[20]byte]*fakeRelayKeys{},
		in:               make(chan *cell.Cell, 8192),
		done:             make(chan struct{}),
		streams:          map[uint16]*fakeStream{},
		endReasonForPort: map[uint16]cell.EndReason{},
		downloadForPort:  map[uint16]int{},
		destroys:         make(chan cell.DestroyReason, 4),
		windowFull:       make(chan uint16, 1),
		ends:             make(chan cell.EndReason, 64),
		violations:       make(chan string, 64),
		connecteds:       make(chan uint16, 16),
		do:               make(chan func()),
	}
	for _, r := range relays {
		f.relays[r.id] = r
	}
	if len(relays) > 0 {
		f.first = relays[0]
	}
	go f.loop()
	t.Cleanup(func() { close(f.done) })
	return f
}

func (f *fakeNet) OpenCircuit(h Handler) (uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.h = h
	f.circID = 0x80000007
	return f.circID, nil
}

func (f *fakeNet) CloseCircuit(id uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
}

// Send plays the channel's write loop: the cell is written out at once
// (copied) and goes back to the pool, so that the relay goroutine, which
// also plays the read loop, never holds the client's pool cells.
func (f *fakeNet) Send(c *cell.Cell) error {
	if f.discard.Load() {
		f.pool.Put(c)
		return nil
	}
	cp := new(cell.Cell)
	*cp = *c
	f.pool.Put(c)
	select {
	case f.in <- cp:
		return nil
	default:
		return fmt.Errorf("fake channel queue full")
	}
}

func (f *fakeNet) violation(format string, args ...any) {
	select {
	case f.violations <- fmt.Sprintf(format, args...):
	default:
	}
}

// toClient hands a cell to the circuit as the channel's read loop would.
func (f *fakeNet) toClient(c *cell.Cell) {
	f.mu.Lock()
	h := f.h
	f.mu.Unlock()
	c.CircID = f.circID
	h.HandleCell(c)
}

// relayToClient originates a relay cell at hop i towards the client.
func (f *fakeNet) relayToClient(i int, cmd cell.RelayCommand, sid uint16, data []byte) {
	c, err := f.pool.GetInbound(context.Background())
	if err != nil {
		f.t.Errorf("fake relay: %v", err)
		return
	}
	c.Command = cell.Relay
	if err := cell.SetRelay(&c.Payload, cmd, sid, data); err != nil {
		f.t.Errorf("fake relay: %v", err)
		return
	}
	h := f.hops[i]
	h.layer.OriginateBackward(&c.Payload)
	if cmd == cell.RelayData && h.cc {
		if (h.inflight+1)%h.inc == 0 {
			var d [20]byte
			h.layer.BackwardDigest(&d)
			h.sentDigests = append(h.sentDigests, d)
		}
		h.inflight++
	} else if cmd == cell.RelayData {
		if (h.packageWindow-1)%CircWindowInc == 0 {
			var d [20]byte
			h.layer.BackwardDigest(&d)
			h.sentDigests = append(h.sentDigests, d)
		}
		h.packageWindow--
	}
	for j := i - 1; j >= 0; j-- {
		f.hops[j].layer.EncryptBackward(&c.Payload)
	}
	f.toClient(c)
}

func (f *fakeNet) addHop(k *fakeRelayKeys, km *handshake.KeyMaterial) *fakeHop {
	h := &fakeHop{keys: k, layer: relaycrypto.NewTor1(km), packageWindow: CircWindowStart, deliverWindow: CircWindowStart}
	f.hops = append(f.hops, h)
	return h
}

// serveHandshake answers a CREATE2/EXTEND2 handshake to relay k, ntor or
// ntor v3 (with congestion control if asked and ccSendmeInc is set), and
// adds the hop.
func (f *fakeNet) serveHandshake(htype uint16, data []byte, k *fakeRelayKeys) ([]byte, error) {
	switch htype {
	case cell.HandshakeNtor:
		reply, km, err := ntorServer(data, k)
		if err != nil {
			return nil, err
		}
		f.addHop(k, km)
		return reply, nil
	case cell.HandshakeNtor3:
		var h *fakeHop
		reply, km, err := ntorV3Server(data, k, func(cm []byte) []byte {
			exts, err := handshake.ParseExts(cm)
			if err != nil {
				f.violation("ntor v3 client message: %v", err)
				return []byte{0}
			}
			if _, ok := handshake.FindExt(exts, handshake.ExtCCRequest); ok {
				h = &fakeHop{ccRequested: true}
				if f.ccSendmeInc != 0 {
					return []byte{1, handshake.ExtCCResponse, 1, byte(f.ccSendmeInc)}
				}
			}
			return []byte{0}
		})
		if err != nil {
			return nil, err
		}
		nh := f.addHop(k, km)
		if h != nil {
			nh.ccRequested = true
			if f.ccSendmeInc != 0 {
				nh.cc, nh.inc, nh.cwnd = true, f.ccSendmeInc, f.ccCwnd
				if nh.cwnd == 0 {
					nh.cwnd = CircWindowStart
				}
			}
		}
		return reply, nil
	}
	return nil, fmt.Errorf("handshake type %d", htype)
}

// ntorV3Server is the relay side of ntor v3 (proposal 332) for relay k:
// it checks the client's handshake, passes the decrypted client message
// to respond and answers with the message respond returns.
func ntorV3Server(skin []byte, k *fakeRelayKeys, respond func(cm []byte) []byte) ([]byte, *handshake.KeyMaterial, error) {
	const proto = "ntor3-curve25519-sha3_256-1"
	ver := []byte(handshake.NtorV3CircuitVerification)
	encap := func(w interface{ Write([]byte) (int, error) }, b []byte) {
		var l [8]byte
		binary.BigEndian.PutUint64(l[:], uint64(len(b)))
		w.Write(l[:])
		w.Write(b)
	}
	if len(skin) < handshake.NtorV3ClientOverhead || !bytes.Equal(skin[:32], k.ed[:]) || !bytes.Equal(skin[32:64], k.ntorPub[:]) {
		return nil, nil, fmt.Errorf("ntor v3 onionskin not for this relay")
	}
	x := skin[64:96]
	encMsg := skin[96 : len(skin)-32]
	mac := skin[len(skin)-32:]
	xb, err := curve25519.X25519(k.ntorSec[:], x)
	if err != nil {
		return nil, nil, err
	}
	var k1 [64]byte
	sh := sha3.NewSHAKE256()
	encap(sh, []byte(proto+":kdf_phase1"))
	for _, b := range [][]byte{xb, k.ed[:], x, k.ntorPub[:], []byte(proto)} {
		sh.Write(b)
	}
	encap(sh, ver)
	sh.Read(k1[:])
	hm := sha3.New256()
	encap(hm, []byte(proto+":msg_mac"))
	encap(hm, k1[32:])
	hm.Write(skin[:len(skin)-32])
	if !hmac.Equal(hm.Sum(nil), mac) {
		return nil, nil, fmt.Errorf("ntor v3 client MAC does not match")
	}
	cm := make([]byte, len(encMsg))
	aesCTR(k1[:32], cm, encMsg)
	sm := respond(cm)

	var ysec [32]byte
	rand.Read(ysec[:])
	y, _ := curve25519.X25519(ysec[:], curve25519.Basepoint)
	xy, err := curve25519.X25519(ysec[:], x)
	if err != nil {
		return nil, nil, err
	}
	hs, hv := sha3.New256(), sha3.New256()
	encap(hs, []byte(proto+":key_seed"))
	encap(hv, []byte(proto+":verify"))
	for _, b := range [][]byte{xy, xb, k.ed[:], k.ntorPub[:], x, y, []byte(proto)} {
		hs.Write(b)
		hv.Write(b)
	}
	encap(hs, ver)
	encap(hv, ver)
	seed, verify := hs.Sum(nil), hv.Sum(nil)
	fin := sha3.NewSHAKE256()
	encap(fin, []byte(proto+":kdf_final"))
	fin.Write(seed)
	encKey := make([]byte, 32)
	fin.Read(encKey)
	keys := make([]byte, handshake.KeyMaterialLen)
	fin.Read(keys)
	encSM := make([]byte, len(sm))
	aesCTR(encKey, encSM, sm)
	ha := sha3.New256()
	encap(ha, []byte(proto+":auth_final"))
	for _, b := range [][]byte{verify, k.ed[:], k.ntorPub[:], y, x, mac} {
		ha.Write(b)
	}
	encap(ha, encSM)
	ha.Write([]byte(proto + "Server"))
	reply := append(append(append([]byte{}, y...), ha.Sum(nil)...), encSM...)
	km, err := handshake.KeyMaterialFromRFC5869(keys)
	return reply, km, err
}

func aesCTR(key, dst, src []byte) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	cipher.NewCTR(blk, make([]byte, aes.BlockSize)).XORKeyStream(dst, src)
}

func (f *fakeNet) loop() {
	for {
		select {
		case <-f.done:
			return
		case fn := <-f.do:
			fn()
			f.pump()
		case c := <-f.in:
			if f.discard.Load() {
				continue
			}
			f.handle(c)
			f.pump()
		}
	}
}

func (f *fakeNet) handle(c *cell.Cell) {
	switch c.Command {
	case cell.CreateFast:
		if f.destroyOnCreate {
			f.destroy(cell.DestroyResourceLimit)
			return
		}
		var y [20]byte
		rand.Read(y[:])
		k0 := append(append([]byte{}, c.Payload[:20]...), y[:]...)
		k, _ := handshake.KDFTor(k0, handshake.KeyMaterialLen)
		var km handshake.KeyMaterial
		copy(km.KH[:], k[0:20])
		copy(km.Df[:], k[20:40])
		copy(km.Db[:], k[40:60])
		copy(km.Kf[:], k[60:76])
		copy(km.Kb[:], k[76:92])
		f.addHop(f.first, &km)
		r := f.pool.Get()
		r.Command = cell.CreatedFast
		(&cell.CreatedFastMsg{Y: y, DerivativeKH: km.KH}).MarshalTo(&r.Payload)
		f.toClient(r)
	case cell.Create2:
		if f.destroyOnCreate {
			f.destroy(cell.DestroyResourceLimit)
			return
		}
		m, err := cell.ParseCreate2(c.Payload[:])
		if err != nil {
			f.violation("bad CREATE2: %v", err)
			return
		}
		reply, err := f.serveHandshake(m.HandshakeType, m.HandshakeData, f.first)
		if err != nil {
			f.violation("CREATE2: %v", err)
			f.destroy(cell.DestroyProtocol)
			return
		}
		r := f.pool.Get()
		r.Command = cell.Created2
		(&cell.Created2Msg{HandshakeData: reply}).MarshalTo(&r.Payload)
		f.toClient(r)
	case cell.Destroy:
		reason, _ := cell.ParseDestroy(c.Payload[:])
		f.destroys <- reason
	case cell.Relay, cell.RelayEarly:
		if c.Command == cell.RelayEarly {
			f.early++
			if f.early > MaxRelayEarly {
				f.violation("more than 8 RELAY_EARLY cells")
			}
		}
		for i, h := range f.hops {
			if h.layer.DecryptForward(&c.Payload) {
				f.handleRelay(i, c)
				return
			}
		}
		f.violation("relay cell recognized by no hop")
	default:
		f.violation("unexpected %s cell", c.Command)
	}
}

func (f *fakeNet) destroy(r cell.DestroyReason) {
	c := f.pool.Get()
	c.Command = cell.Destroy
	cell.MarshalDestroy(&c.Payload, r)
	f.toClient(c)
}

func (f *fakeNet) handleRelay(i int, c *cell.Cell) {
	h := f.hops[i]
	cmd := cell.RelayCmd(&c.Payload)
	sid := cell.RelayStreamID(&c.Payload)
	body, err := cell.RelayBody(&c.Payload)
	if err != nil {
		f.violation("relay body: %v", err)
		return
	}
	if pad := c.Payload[cell.RelayHeaderLen+len(body):]; len(pad) >= 4 && (pad[0]|pad[1]|pad[2]|pad[3]) != 0 {
		f.violation("padding does not start with four zero bytes")
	}
	switch cmd {
	case cell.RelayExtend2:
		if c.Command != cell.RelayEarly {
			f.violation("EXTEND2 not in RELAY_EARLY")
		}
		if f.truncateOnExtend {
			f.relayToClient(i, cell.RelayTruncated, 0, []byte{byte(cell.DestroyConnectFailed)})
			return
		}
		m, err := cell.ParseExtend2(body)
		if err != nil {
			f.violation("EXTEND2: %v", err)
			return
		}
		var target *fakeRelayKeys
		for _, s := range m.Specs {
			if s.Type == cell.LinkSpecLegacyID {
				target = f.relays[[20]byte(s.Data)]
			}
		}
		if target == nil {
			f.violation("EXTEND2 to unknown relay")
			return
		}
		reply, err := f.serveHandshake(m.HandshakeType, m.HandshakeData, target)
		if err != nil {
			f.violation("EXTEND2 handshake: %v", err)
			return
		}
		msg := cell.Created2Msg{HandshakeData: reply}
		f.relayToClient(i, cell.RelayExtended2, 0, msg.AppendTo(nil))
	case cell.RelayBegin, cell.RelayBeginDir:
		port := uint16(0)
		if cmd == cell.RelayBegin {
			nul := bytes.IndexByte(body, 0)
			if nul < 0 || len(body) != nul+5 {
				f.violation("bad BEGIN body %q", body)
				return
			}
			hp := string(body[:nul])
			p, _ := strconv.Atoi(hp[strings.LastIndexByte(hp, ':')+1:])
			port = uint16(p)
		}
		if r, ok := f.endReasonForPort[port]; ok {
			f.relayToClient(i, cell.RelayEnd, sid, []byte{byte(r)})
			return
		}
		st := &fakeStream{hop: i, packageWindow: StreamWindowStart, deliverWindow: StreamWindowStart, stopReading: f.noEcho}
		f.streams[sid] = st
		if cmd == cell.RelayBegin {
			f.relayToClient(i, cell.RelayConnected, sid, []byte{127, 0, 0, 1, 0, 0, 0, 60})
		} else {
			f.relayToClient(i, cell.RelayConnected, sid, nil)
		}
		if n, ok := f.downloadForPort[port]; ok {
			st.out = make([]byte, n)
			for j := range st.out {
				st.out[j] = byte(j * 7)
			}
			st.endAfterOut = true
			st.stopReading = true
		}
	case cell.RelayData:
		if f.onData != nil {
			f.onData(body, c.Payload[cell.RelayHeaderLen+len(body):])
		}
		if h.cc {
			f.ccDataFromClient(i, h, sid, body)
			return
		}
		h.deliverWindow--
		if h.deliverWindow < 0 {
			f.violation("client overran circuit window")
		}
		if h.deliverWindow <= CircWindowStart-CircWindowInc {
			var d [20]byte
			h.layer.ForwardDigest(&d)
			h.deliverWindow += CircWindowInc
			if f.sendV0Sendme {
				f.relayToClient(i, cell.RelaySendme, 0, nil)
			} else {
				f.relayToClient(i, cell.RelaySendme, 0, append([]byte{1, 0, 20}, d[:]...))
			}
		}
		st := f.streams[sid]
		if st == nil {
			return
		}
		st.deliverWindow--
		if st.deliverWindow < 0 {
			f.violation("client overran stream window")
		}
		if st.deliverWindow <= StreamWindowStart-StreamWindowInc && !f.noStreamSendmes {
			st.deliverWindow += StreamWindowInc
			f.relayToClient(i, cell.RelaySendme, sid, nil)
		}
		st.received = append(st.received, body...)
		st.receivedCells++
		if st.receivedCells == StreamWindowStart {
			select {
			case f.windowFull <- sid:
			default:
			}
		}
		if !st.stopReading {
			st.out = append(st.out, body...)
		}
	case relayXoff, relayXon:
		st := f.streams[sid]
		if !h.cc {
			f.violation("%s on stream %d without flow control", cmd, sid)
			return
		}
		if cmd == relayXon && len(body) == 5 {
			f.xonRates = append(f.xonRates, binary.BigEndian.Uint32(body[1:]))
		}
		if st == nil {
			return // a stream the relay ended
		}
		if cmd == relayXoff {
			if len(body) != 1 || body[0] != 0 {
				f.violation("bad XOFF body %x", body)
			}
			st.xoffs++
			st.xoff = true
		} else {
			if len(body) != 5 || body[0] != 0 {
				f.violation("bad XON body %x", body)
			}
			st.xons++
			st.xonRates = append(st.xonRates, binary.BigEndian.Uint32(body[1:]))
			st.xoff = false
		}
	case cell.RelaySendme:
		if sid == 0 {
			if len(body) < 23 || body[0] != 1 {
				f.violation("client sent a circuit SENDME that is not v1: %x", body)
				return
			}
			if len(h.sentDigests) == 0 {
				f.violation("unexpected circuit SENDME")
				return
			}
			if string(h.sentDigests[0][:]) != string(body[3:23]) {
				f.violation("circuit SENDME digest mismatch")
			}
			h.sentDigests = h.sentDigests[1:]
			if h.cc {
				h.inflight -= h.inc
			} else {
				h.packageWindow += CircWindowInc
			}
			h.clientSendmes.Add(1)
			return
		}
		if h.cc {
			f.violation("stream SENDME on a congestion-controlled hop")
			return
		}
		if st := f.streams[sid]; st != nil {
			st.packageWindow += StreamWindowInc
			st.sendmesFromCli++
			f.streamSendmes.Add(1)
			if st.packageWindow > StreamWindowStart {
				f.violation("stream window above 500")
			}
		}
	case cell.RelayEnd:
		if st := f.streams[sid]; st != nil {
			st.ended = true
			delete(f.streams, sid)
		}
		f.ends <- parseEnd(body)
	case cell.RelayResolve:
		f.relayToClient(i, cell.RelayResolved, sid, []byte{4, 4, 127, 0, 0, 1, 0, 0, 1, 0, 6, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5})
	case cell.RelayConnected:
		f.connecteds <- sid
	case cell.RelayDrop:
	default:
		f.violation("unexpected relay %s at hop %d", cmd, i)
	}
}

// pump sends queued stream data while the windows allow.
func (f *fakeNet) pump() {
	for sid, st := range f.streams {
		h := f.hops[st.hop]
		can := func() bool {
			if h.cc {
				return !st.xoff && h.inflight < h.cwnd
			}
			return st.packageWindow > 0 && h.packageWindow > 0
		}
		for len(st.out) > 0 && can() {
			n := min(len(st.out), cell.RelayDataLen)
			f.relayToClient(st.hop, cell.RelayData, sid, st.out[:n])
			st.out = st.out[n:]
			st.packageWindow--
		}
		if len(st.out) == 0 && st.endAfterOut && !st.ended {
			st.ended = true
			f.relayToClient(st.hop, cell.RelayEnd, sid, []byte{byte(cell.EndDone)})
			delete(f.streams, sid)
		}
	}
}

// ccDataFromClient handles a DATA cell from the client on hop i, which
// uses congestion control: a SENDME for every inc cells, no stream window.
func (f *fakeNet) ccDataFromClient(i int, h *fakeHop, sid uint16, body []byte) {
	h.recvCount++
	if h.recvCount%h.inc == 0 {
		var d [20]byte
		h.layer.ForwardDigest(&d)
		ack := func() {
			f.relayToClient(i, cell.RelaySendme, 0, append([]byte{1, 0, 20}, d[:]...))
			h.sendmesToCli.Add(1)
		}
		if f.ccHoldAcks {
			var at int64
			if f.clock != nil {
				at = f.clock.Load()
			}
			f.heldAcks = append(f.heldAcks, heldAck{at: at, send: ack})
		} else {
			ack()
		}
	}
	st := f.streams[sid]
	if st == nil {
		return
	}
	st.received = append(st.received, body...)
	st.receivedCells++
	if !st.stopReading {
		st.out = append(st.out, body...)
	}
}

// heldAck is a SENDME the relay holds back (fakeNet.ccHoldAcks).
type heldAck struct {
	at   int64 // the test clock when the cell it answers arrived
	send func()
}
