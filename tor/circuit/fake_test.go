package circuit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
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
	ntorSec [32]byte
	ntorPub [32]byte
}

func newFakeRelayKeys(t testing.TB, n byte) *fakeRelayKeys {
	k := &fakeRelayKeys{}
	k.id[0] = n
	rand.Read(k.id[1:])
	rand.Read(k.ntorSec[:])
	pub, err := curve25519.X25519(k.ntorSec[:], curve25519.Basepoint)
	if err != nil {
		t.Fatal(err)
	}
	copy(k.ntorPub[:], pub)
	return k
}

func (k *fakeRelayKeys) hopInfo() HopInfo {
	return HopInfo{RSAID: k.id, NtorKey: k.ntorPub}
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
}

type fakeHop struct {
	keys          *fakeRelayKeys
	layer         *relaycrypto.Layer
	packageWindow int
	deliverWindow int
	sentDigests   [][20]byte
	clientSendmes atomic.Int32
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
	if cmd == cell.RelayData {
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

func (f *fakeNet) addHop(k *fakeRelayKeys, km *handshake.KeyMaterial) {
	f.hops = append(f.hops, &fakeHop{keys: k, layer: relaycrypto.NewTor1(km), packageWindow: CircWindowStart, deliverWindow: CircWindowStart})
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
		if err != nil || m.HandshakeType != cell.HandshakeNtor {
			f.violation("bad CREATE2: %v", err)
			return
		}
		reply, km, err := ntorServer(m.HandshakeData, f.first)
		if err != nil {
			f.violation("CREATE2: %v", err)
			f.destroy(cell.DestroyProtocol)
			return
		}
		f.addHop(f.first, km)
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
		reply, km, err := ntorServer(m.HandshakeData, target)
		if err != nil {
			f.violation("EXTEND2 handshake: %v", err)
			return
		}
		msg := cell.Created2Msg{HandshakeData: reply}
		f.relayToClient(i, cell.RelayExtended2, 0, msg.AppendTo(nil))
		f.addHop(target, km)
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
		st := &fakeStream{hop: i, packageWindow: StreamWindowStart, deliverWindow: StreamWindowStart}
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
			h.packageWindow += CircWindowInc
			h.clientSendmes.Add(1)
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
		for len(st.out) > 0 && st.packageWindow > 0 && h.packageWindow > 0 {
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
