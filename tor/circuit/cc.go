package circuit

import (
	"time"
)

// Congestion control (proposal 324): TOR_VEGAS with RFC 3742 limited slow
// start, on a hop that negotiated it in its ntor v3 handshake (in practice
// the exit of an exit circuit). On such a hop:
//
//   - sending: the fixed package window of 1000 cells is replaced by the
//     congestion window cwnd, counted in cells in flight (sent and not yet
//     acknowledged by a circuit SENDME). The hop sends an authenticated
//     SENDME for every sendme_inc DATA cells it receives; the time from the
//     sendme_inc-th cell to its SENDME is an RTT sample, and at each SENDME
//     the RTT and BDP estimators and Vegas update cwnd.
//   - receiving: a circuit SENDME goes out for every sendme_inc DATA cells
//     received, with the digest of the sendme_inc-th. Stream windows are
//     not used: streams use XON/XOFF (see flow.go).
//
// The arithmetic follows C tor 0.4.9 (congestion_control_common.c,
// congestion_control_vegas.c) so that both ends see the same evolution:
// unsigned integer cells and microseconds, N-EWMA in the rearranged form
// of proposal 324 2.1.2.

// CC algorithms (consensus parameter cc_alg).
const (
	CCAlgFixed    = 0 // fixed windows (no congestion control)
	CCAlgWestwood = 1
	CCAlgVegas    = 2
	CCAlgNOLA     = 3
)

// tlsRecordMaxCells is C tor's TLS_RECORD_MAX_CELLS: whole 514-byte cells
// in a 16 KiB TLS record.
const tlsRecordMaxCells = 16 * 1024 / 514

// outbufCells is C tor's OUTBUF_CELLS, the unit of the Vegas thresholds.
const outbufCells = 2 * tlsRecordMaxCells

// CCParams are the consensus parameters of congestion control and flow
// control (proposal 324 6.5; param-spec), with C tor 0.4.9's defaults and
// bounds. The Vegas thresholds are those of exit circuits (cc_vegas_*_exit,
// cc_sscap_exit).
type CCParams struct {
	Alg             int // cc_alg: 0 fixed windows, 2 Vegas (others are treated as Vegas)
	SendmeInc       int // cc_sendme_inc: cells acknowledged by a SENDME
	CwndInit        int // cc_cwnd_init
	CwndIncPctSS    int // cc_cwnd_inc_pct_ss
	CwndInc         int // cc_cwnd_inc
	CwndIncRate     int // cc_cwnd_inc_rate
	CwndMin         int // cc_cwnd_min
	CwndMax         int // cc_cwnd_max
	BWEMin          int // cc_bwe_min
	EWMACwndPct     int // cc_ewma_cwnd_pct
	EWMAMax         int // cc_ewma_max
	EWMASS          int // cc_ewma_ss
	RTTResetPct     int // cc_rtt_reset_pct
	VegasAlpha      int // cc_vegas_alpha_exit
	VegasBeta       int // cc_vegas_beta_exit
	VegasGamma      int // cc_vegas_gamma_exit
	VegasDelta      int // cc_vegas_delta_exit
	SSCap           int // cc_sscap_exit
	SSMax           int // cc_ss_max
	CwndFullGap     int // cc_cwnd_full_gap
	CwndFullMinPct  int // cc_cwnd_full_minpct
	CwndFullPerCwnd int // cc_cwnd_full_per_cwnd
	XoffClient      int // cc_xoff_client, in cells
	XoffExit        int // cc_xoff_exit, in cells
	XonRate         int // cc_xon_rate, in cells
	XonChangePct    int // cc_xon_change_pct
	XonEWMACnt      int // cc_xon_ewma_cnt
}

// ccParamSpec is one consensus parameter: name, default, bounds, field.
type ccParamSpec struct {
	name          string
	def, min, max int32
	field         func(p *CCParams) *int
}

const int32Max = 1<<31 - 1

var ccParamSpecs = [...]ccParamSpec{
	{"cc_alg", CCAlgVegas, 0, 3, func(p *CCParams) *int { return &p.Alg }},
	{"cc_sendme_inc", tlsRecordMaxCells, 1, 255, func(p *CCParams) *int { return &p.SendmeInc }},
	{"cc_cwnd_init", 4 * tlsRecordMaxCells, tlsRecordMaxCells, 10000, func(p *CCParams) *int { return &p.CwndInit }},
	{"cc_cwnd_inc_pct_ss", 100, 1, 500, func(p *CCParams) *int { return &p.CwndIncPctSS }},
	{"cc_cwnd_inc", tlsRecordMaxCells, 1, 1000, func(p *CCParams) *int { return &p.CwndInc }},
	{"cc_cwnd_inc_rate", 1, 1, 250, func(p *CCParams) *int { return &p.CwndIncRate }},
	{"cc_cwnd_min", 2 * tlsRecordMaxCells, tlsRecordMaxCells, 1000, func(p *CCParams) *int { return &p.CwndMin }},
	{"cc_cwnd_max", int32Max, 500, int32Max, func(p *CCParams) *int { return &p.CwndMax }},
	{"cc_bwe_min", 5, 2, 20, func(p *CCParams) *int { return &p.BWEMin }},
	{"cc_ewma_cwnd_pct", 50, 1, 255, func(p *CCParams) *int { return &p.EWMACwndPct }},
	{"cc_ewma_max", 10, 2, int32Max, func(p *CCParams) *int { return &p.EWMAMax }},
	{"cc_ewma_ss", 2, 2, int32Max, func(p *CCParams) *int { return &p.EWMASS }},
	{"cc_rtt_reset_pct", 100, 0, 100, func(p *CCParams) *int { return &p.RTTResetPct }},
	{"cc_vegas_alpha_exit", 2 * outbufCells, 0, 1000, func(p *CCParams) *int { return &p.VegasAlpha }},
	{"cc_vegas_beta_exit", 4 * outbufCells, 0, 1000, func(p *CCParams) *int { return &p.VegasBeta }},
	{"cc_vegas_gamma_exit", 3 * outbufCells, 0, 1000, func(p *CCParams) *int { return &p.VegasGamma }},
	{"cc_vegas_delta_exit", 6 * outbufCells, 0, int32Max, func(p *CCParams) *int { return &p.VegasDelta }},
	{"cc_sscap_exit", 500, 100, int32Max, func(p *CCParams) *int { return &p.SSCap }},
	{"cc_ss_max", 5000, 500, int32Max, func(p *CCParams) *int { return &p.SSMax }},
	{"cc_cwnd_full_gap", 1, 0, 1<<15 - 1, func(p *CCParams) *int { return &p.CwndFullGap }},
	{"cc_cwnd_full_minpct", 75, 0, 100, func(p *CCParams) *int { return &p.CwndFullMinPct }},
	{"cc_cwnd_full_per_cwnd", 1, 0, 1, func(p *CCParams) *int { return &p.CwndFullPerCwnd }},
	{"cc_xoff_client", 500, 1, 10000, func(p *CCParams) *int { return &p.XoffClient }},
	{"cc_xoff_exit", 500, 1, 10000, func(p *CCParams) *int { return &p.XoffExit }},
	{"cc_xon_rate", 500, 1, 5000, func(p *CCParams) *int { return &p.XonRate }},
	{"cc_xon_change_pct", 25, 1, 99, func(p *CCParams) *int { return &p.XonChangePct }},
	{"cc_xon_ewma_cnt", 2, 2, 100, func(p *CCParams) *int { return &p.XonEWMACnt }},
}

// DefaultCCParams returns C tor's defaults, what applies when the consensus
// sets none of the parameters.
func DefaultCCParams() CCParams {
	return CCParamsFrom(nil)
}

// CCParamsFrom reads the parameters from a consensus through param (for
// example dir.Consensus.Param), which returns the value of name clamped
// to [min, max], or def when the consensus has none. A nil param gives
// the defaults.
func CCParamsFrom(param func(name string, def, min, max int32) int32) CCParams {
	var p CCParams
	for _, s := range ccParamSpecs {
		v := s.def
		if param != nil {
			v = param(s.name, s.def, s.min, s.max)
		}
		*s.field(&p) = int(v)
	}
	return p
}

// Enabled reports whether the consensus asks for congestion control
// (cc_alg is not 0).
func (p CCParams) Enabled() bool { return p.Alg != CCAlgFixed }

// normalized returns p with every parameter clamped to its bounds.
func (p CCParams) normalized() CCParams {
	for _, s := range ccParamSpecs {
		f := s.field(&p)
		*f = min(max(*f, int(s.min)), int(s.max))
	}
	return p
}

// ccHoldLimit is how many DATA cells received and not yet read a hop with
// congestion control may hold before its circuit SENDMEs are withheld: the
// memory bound that replaces the fixed circuit window (see grantLocked).
// It is twice the XOFF threshold, so that XOFF acts first.
func (p *CCParams) holdLimit() int { return max(CircWindowStart, 2*p.XoffClient) }

// nEWMA is N-EWMA (proposal 324 2.1.2) in the rearranged integer form
// that C tor uses: (2*curr + (N-1)*prev)/(N+1), or curr without a prev.
func nEWMA(curr, prev, n uint64) uint64 {
	if prev == 0 {
		return curr
	}
	return (2*curr + (n-1)*prev) / (n + 1)
}

// percentMaxMix is the weighted average of a and b giving pctMax percent
// to the larger (C tor's percent_max_mix).
func percentMaxMix(a, b, pctMax uint64) uint64 {
	hi, lo := max(a, b), min(a, b)
	return pctMax*hi/100 + (100-pctMax)*lo/100
}

// sentMark is a DATA cell whose SENDME we expect: its digest (for the
// authenticated SENDME) and when it was sent, in microseconds.
type sentMark struct {
	digest [sendmeDigestLen]byte
	at     int64
}

// markRing is a FIFO of sentMarks that grows (by doubling, rarely) and
// never shrinks, so that the steady state allocates nothing.
type markRing struct {
	buf        []sentMark
	head, size int
}

func (r *markRing) push(m sentMark) {
	if r.size == len(r.buf) {
		nb := make([]sentMark, max(16, 2*len(r.buf)))
		for i := range r.size {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.size)%len(r.buf)] = m
	r.size++
}

// tail returns the slot push would fill, grown if needed, and counts it.
func (r *markRing) tail() *sentMark {
	r.push(sentMark{})
	return &r.buf[(r.head+r.size-1)%len(r.buf)]
}

func (r *markRing) front() *sentMark { return &r.buf[r.head] }

func (r *markRing) pop() sentMark {
	m := r.buf[r.head]
	r.head = (r.head + 1) % len(r.buf)
	r.size--
	return m
}

// maxArrivals bounds the SENDME arrival timestamps kept for the
// SENDME-rate BDP estimator: max(cc_bwe_min, the N-EWMA count), which is
// at most 20 with sane consensus values.
const maxArrivals = 64

// ccState is the congestion control state of one hop. It is guarded by
// Circuit.mu.
type ccState struct {
	p         CCParams
	sendmeInc uint64

	// Sending side.
	cwnd, inflight    uint64
	inSlowStart       bool
	cwndFull          bool
	nextCCEvent       uint64
	nextCwndEvent     uint64
	minRTT, ewmaRTT   uint64 // microseconds
	maxRTT            uint64
	bdpCwnd           uint64 // BDP_ALG_CWND_RTT, what Vegas uses
	bdpInflight       uint64 // BDP_ALG_INFLIGHT_RTT
	bdpSendme         uint64 // BDP_ALG_SENDME_RATE
	bdpPiecewise      uint64 // BDP_ALG_PIECEWISE
	clockBroken       bool   // the last RTT sample looked like a stalled clock
	sent              markRing
	arrivals          [maxArrivals]uint64
	arrHead, arrCount int
	rttResets         uint64
	clockStalls       uint64

	// Receiving side: DATA cells received modulo sendmeInc, and the
	// digests of the cells whose SENDMEs are withheld, oldest first.
	recvCount uint64
	pend      markRing
}

func newCCState(p CCParams, sendmeInc uint8) *ccState {
	cc := &ccState{p: p, sendmeInc: uint64(sendmeInc), cwnd: uint64(p.CwndInit), inSlowStart: true}
	cc.nextCCEvent = cc.cwndUpdateRate()
	return cc
}

// canSend reports whether one more cell fits in the congestion window.
func (cc *ccState) canSend() bool { return cc.inflight < cc.cwnd }

// noteSent accounts for a DATA cell about to be sent (before it is
// counted in flight): it returns true if the hop will answer this cell
// with a SENDME, whose digest and send time the caller records.
func (cc *ccState) sendmeExpected() bool {
	return (cc.inflight+1)%cc.sendmeInc == 0
}

// cwndUpdateRate is C tor's CWND_UPDATE_RATE: SENDMEs between window
// updates (every SENDME in slow start).
func (cc *ccState) cwndUpdateRate() uint64 {
	if cc.inSlowStart {
		return 1
	}
	r := uint64(cc.p.CwndIncRate) * cc.sendmeInc
	return (cc.cwnd + r/2) / r
}

// sendmePerCwnd is C tor's SENDME_PER_CWND: SENDMEs in a window, rounded.
func (cc *ccState) sendmePerCwnd() uint64 {
	return (cc.cwnd + cc.sendmeInc/2) / cc.sendmeInc
}

// ewmaCount is the N of the RTT and BDP N-EWMAs (C tor's n_ewma_count).
func (cc *ccState) ewmaCount() uint64 {
	var n uint64
	if cc.inSlowStart {
		n = uint64(cc.p.EWMASS)
	} else {
		n = min(cc.cwndUpdateRate()*uint64(cc.p.EWMACwndPct)/100, uint64(cc.p.EWMAMax))
	}
	return max(n, 2)
}

// deltaDiscrepancyMax is the RTT ratio beyond which a sample is taken for
// a clock jump or stall (proposal 324 2.1.1).
const deltaDiscrepancyMax = 5000

// stalledOrJumped applies the clock heuristics of proposal 324 2.1.1 to
// the new RTT sample against the EWMA. The stall cache is per circuit.
func (cc *ccState) stalledOrJumped(old, nu uint64) bool {
	if nu == 0 {
		cc.clockBroken = true
		return true
	}
	if !((!cc.inSlowStart && cc.ewmaRTT != 0) || cc.bdpSendme != 0) {
		return false // not enough data for the heuristics yet
	}
	if old > nu*deltaDiscrepancyMax {
		return cc.clockBroken
	}
	if nu > old*deltaDiscrepancyMax {
		return true
	}
	cc.clockBroken = false
	return false
}

// updateRTT takes the RTT sample of a SENDME (now and the send time of the
// cell it answers, in microseconds) and returns it, or 0 if the clock
// heuristics rejected it.
func (cc *ccState) updateRTT(now, sentAt int64) uint64 {
	var rtt uint64
	if now > sentAt {
		rtt = uint64(now - sentAt)
	}
	if cc.stalledOrJumped(cc.ewmaRTT, rtt) {
		cc.clockStalls++
		return 0
	}
	cc.ewmaRTT = nEWMA(rtt, cc.ewmaRTT, cc.ewmaCount())
	cc.maxRTT = max(cc.maxRTT, rtt)
	switch {
	case cc.minRTT == 0:
		cc.minRTT = cc.ewmaRTT
	case cc.cwnd == uint64(cc.p.CwndMin) && !cc.inSlowStart:
		// Out of a wedge: a cwnd at its minimum may come from an
		// abnormally low min RTT.
		cc.minRTT = percentMaxMix(cc.ewmaRTT, cc.minRTT, uint64(cc.p.RTTResetPct))
		cc.rttResets++
	case cc.ewmaRTT < cc.minRTT:
		cc.minRTT = cc.ewmaRTT
	}
	return rtt
}

// updateBDP updates the BDP estimators (proposal 324 3.1) after an RTT
// sample rtt (0 if rejected) at time now. active says whether streams
// still have data to send on the hop. It reports whether the estimates
// were updated. There is no "blocked channel" signal here: a client's
// channel queue never holds cells for long.
func (cc *ccState) updateBDP(now int64, rtt uint64, active bool) bool {
	if cc.ewmaRTT == 0 {
		// The clock has been stalled for the whole circuit.
		cc.bdpCwnd, cc.bdpInflight, cc.bdpSendme, cc.bdpPiecewise = cc.cwnd, cc.cwnd, cc.cwnd, cc.cwnd
		return false
	}
	cc.bdpCwnd = cc.cwnd * cc.minRTT / cc.ewmaRTT
	switch {
	case !active:
		cc.arrHead, cc.arrCount = 0, 0
	case rtt != 0 && !cc.clockBroken:
		cc.pushArrival(uint64(now))
		if cc.arrCount >= cc.p.BWEMin {
			for cc.arrCount > cc.p.BWEMin && uint64(cc.arrCount) > cc.ewmaCount() {
				cc.arrHead = (cc.arrHead + 1) % maxArrivals
				cc.arrCount--
			}
			first := cc.arrivals[cc.arrHead]
			if delta := uint64(now) - first; delta > 0 {
				cells := uint64(cc.arrCount-1) * cc.sendmeInc
				cc.bdpSendme = nEWMA(cells*cc.minRTT/delta, cc.bdpSendme, cc.ewmaCount())
			}
		}
		cc.bdpInflight = cc.inflight * cc.minRTT / max(cc.ewmaRTT, rtt)
	default:
		cc.bdpInflight = cc.inflight * cc.minRTT / cc.ewmaRTT
	}
	cc.bdpPiecewise = max(cc.bdpSendme, cc.bdpCwnd)
	if cc.bdpPiecewise == 0 {
		cc.bdpPiecewise = cc.bdpCwnd
	}
	return rtt != 0
}

func (cc *ccState) pushArrival(t uint64) {
	if cc.arrCount == maxArrivals {
		cc.arrHead = (cc.arrHead + 1) % maxArrivals
		cc.arrCount--
	}
	cc.arrivals[(cc.arrHead+cc.arrCount)%maxArrivals] = t
	cc.arrCount++
}

// ssInc is the RFC 3742 limited slow start increment.
func (cc *ccState) ssInc() uint64 {
	if cc.cwnd <= uint64(cc.p.SSCap) {
		return (uint64(cc.p.CwndIncPctSS)*cc.sendmeInc + 50) / 100
	}
	return max((cc.sendmeInc*uint64(cc.p.SSCap)+cc.cwnd)/(2*cc.cwnd), 1)
}

// onSendme runs TOR_VEGAS (proposal 324 3.3, C tor's
// congestion_control_vegas_process_sendme) for a circuit SENDME that
// arrived at now answering a cell sent at sentAt (microseconds); active
// says whether streams still have data to send.
func (cc *ccState) onSendme(now, sentAt int64, active bool) {
	if cc.nextCCEvent > 0 {
		cc.nextCCEvent--
	}
	if cc.nextCwndEvent > 0 {
		cc.nextCwndEvent--
	}
	rtt := cc.updateRTT(now, sentAt)
	if !cc.updateBDP(now, rtt, active) {
		cc.inflight -= min(cc.inflight, cc.sendmeInc)
		return
	}
	bdp := cc.bdpCwnd
	var queueUse uint64
	if cc.cwnd > bdp {
		queueUse = cc.cwnd - bdp
	}
	if cc.inflight+uint64(cc.p.CwndFullGap)*cc.sendmeInc >= cc.cwnd {
		cc.cwndFull = true
	} else if 100*cc.inflight < uint64(cc.p.CwndFullMinPct)*cc.cwnd {
		cc.cwndFull = false
	}
	cwndInc := uint64(cc.p.CwndInc)
	if cc.inSlowStart {
		if queueUse < uint64(cc.p.VegasGamma) {
			if cc.cwndFull {
				inc := cc.ssInc()
				cc.cwnd += inc
				if inc*cc.sendmePerCwnd() <= cwndInc*uint64(cc.p.CwndIncRate) {
					cc.inSlowStart = false
				}
			}
		} else {
			cc.cwnd = bdp + uint64(cc.p.VegasGamma)
			cc.inSlowStart = false
		}
		if cc.cwnd >= uint64(cc.p.SSMax) {
			cc.cwnd = uint64(cc.p.SSMax)
			cc.inSlowStart = false
		}
	} else if cc.nextCCEvent == 0 {
		switch {
		case queueUse > uint64(cc.p.VegasDelta):
			cc.cwnd = bdp + uint64(cc.p.VegasDelta) - min(cwndInc, bdp+uint64(cc.p.VegasDelta))
		case queueUse > uint64(cc.p.VegasBeta):
			cc.cwnd -= min(cwndInc, cc.cwnd)
		case cc.cwndFull && queueUse < uint64(cc.p.VegasAlpha):
			cc.cwnd += cwndInc
		}
		cc.cwnd = max(cc.cwnd, uint64(cc.p.CwndMin))
	}
	if cc.nextCwndEvent == 0 {
		cc.nextCwndEvent = cc.sendmePerCwnd()
	}
	if cc.nextCCEvent == 0 {
		cc.nextCCEvent = cc.cwndUpdateRate()
	}
	if cc.p.CwndFullPerCwnd != 0 {
		if cc.nextCwndEvent == cc.sendmePerCwnd() {
			cc.cwndFull = false
		}
	} else if cc.nextCCEvent == cc.cwndUpdateRate() {
		cc.cwndFull = false
	}
	cc.inflight -= min(cc.inflight, cc.sendmeInc)
	cc.cwnd = min(cc.cwnd, uint64(cc.p.CwndMax))
}

// clockEpoch is the origin of the microsecond clock of congestion and flow
// control; it is set once and never changes.
var clockEpoch = time.Now()

// monoUsec returns the monotonic time in microseconds since clockEpoch.
func monoUsec() int64 { return int64(time.Since(clockEpoch) / time.Microsecond) }

// CongestionStats describes a circuit's congestion and flow control, for
// metrics. Without congestion control only the XON/XOFF counts (zero) and
// Enabled (false) are meaningful.
type CongestionStats struct {
	// Enabled is true when the circuit's last hop negotiated congestion
	// control.
	Enabled bool
	// SendmeInc is the negotiated cells per SENDME.
	SendmeInc int
	// Cwnd is the congestion window, Inflight the cells sent and not yet
	// acknowledged, both in cells.
	Cwnd, Inflight int
	// InSlowStart is true until Vegas leaves slow start.
	InSlowStart bool
	// MinRTT, EWMARTT and MaxRTT are the RTT estimates (zero before the
	// first SENDME).
	MinRTT, EWMARTT, MaxRTT time.Duration
	// BDP is Vegas's bandwidth-delay product estimate, in cells.
	BDP int
	// XoffSent, XonSent, XoffReceived and XonReceived count the flow
	// control cells of the circuit's streams.
	XoffSent, XonSent, XoffReceived, XonReceived uint64
}

// CongestionStats returns the state of the circuit's congestion and flow
// control (that of its last hop with congestion control).
func (c *Circuit) CongestionStats() CongestionStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := CongestionStats{
		XoffSent: c.xoffSent, XonSent: c.xonSent,
		XoffReceived: c.xoffRecv, XonReceived: c.xonRecv,
	}
	for i := len(c.hops) - 1; i >= 0; i-- {
		cc := c.hops[i].cc
		if cc == nil {
			continue
		}
		st.Enabled = true
		st.SendmeInc = int(cc.sendmeInc)
		st.Cwnd, st.Inflight = int(cc.cwnd), int(cc.inflight)
		st.InSlowStart = cc.inSlowStart
		st.MinRTT = time.Duration(cc.minRTT) * time.Microsecond
		st.EWMARTT = time.Duration(cc.ewmaRTT) * time.Microsecond
		st.MaxRTT = time.Duration(cc.maxRTT) * time.Microsecond
		st.BDP = int(cc.bdpCwnd)
		break
	}
	return st
}
