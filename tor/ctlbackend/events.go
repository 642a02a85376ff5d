package ctlbackend

import (
	"context"
	"math"
	"strconv"
	"strings"
	"time"

	"tinytor/tor/control"
	"tinytor/tor/event"
)

// Emitter receives control-port events; *control.Server is one.
type Emitter interface {
	Emit(e control.Event)
	Wants(eventType string) bool
}

// Run forwards the client's events to em, and a BW event every second,
// until ctx ends.
func (b *Backend) Run(ctx context.Context, em Emitter) {
	b.emitMu.Lock()
	b.emit = em
	b.emitMu.Unlock()
	defer func() {
		b.emitMu.Lock()
		b.emit = nil
		b.emitMu.Unlock()
	}()
	unsubscribe := b.cfg.Client.Events().Subscribe(func(ev event.Event) {
		for _, e := range Translate(ev) {
			if em.Wants(e.Type) {
				em.Emit(e)
			}
		}
	})
	defer unsubscribe()

	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastR, lastW := b.cfg.Client.Traffic()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r, w := b.cfg.Client.Traffic()
			if em.Wants("BW") {
				em.Emit(control.BWEvent(r-lastR, w-lastW))
			}
			lastR, lastW = r, w
		}
	}
}

// emitEvent sends e to the attached Emitter, if any wants it.
func (b *Backend) emitEvent(e control.Event) {
	b.emitMu.Lock()
	em := b.emit
	b.emitMu.Unlock()
	if em != nil && em.Wants(e.Type) {
		em.Emit(e)
	}
}

// Translate turns an event of the bus into the control-port events C tor
// sends for it: CIRC, STREAM, ORCONN, HS_DESC, NOTICE/WARN/ERR,
// BUILDTIMEOUT_SET, and STATUS_CLIENT BOOTSTRAP (plus CIRCUIT_ESTABLISHED
// when bootstrap completes).
func Translate(ev event.Event) []control.Event {
	e, ok := translate(ev)
	if !ok {
		return nil
	}
	out := []control.Event{e}
	if b, ok := ev.(event.Bootstrap); ok && b.Phase.Percent >= 100 && b.Problem == "" {
		out = append(out, control.StatusEvent{Type: "STATUS_CLIENT", Severity: "NOTICE", Action: "CIRCUIT_ESTABLISHED"}.Event())
	}
	return out
}

// translate returns the first control-port event for ev, if any.
func translate(ev event.Event) (control.Event, bool) {
	switch e := ev.(type) {
	case *event.Circuit:
		return circEvent(e).Event(), true
	case *event.Stream:
		return streamEvent(e).Event(), true
	case *event.Channel:
		return control.ORConnEvent{
			Target: channelTarget(e),
			Status: e.Status,
			Reason: e.Reason,
			NCircs: e.NCircs,
			ID:     strconv.FormatUint(e.ID, 10),
		}.Event(), true
	case *event.HSDesc:
		auth := "NO_AUTH"
		switch {
		case e.Service:
			auth = "UNKNOWN"
		case e.ClientAuth:
			auth = "CLIENT_AUTH"
		}
		return control.HSDescEvent{
			Action:       e.Action,
			Address:      e.Address,
			AuthType:     auth,
			HSDir:        longNameOrEmpty(e.HSDir),
			DescriptorID: e.DescriptorID,
			Reason:       e.Reason,
		}.Event(), true
	case *event.HSDescContent:
		return control.HSDescContentEvent{
			Address:      e.Address,
			DescriptorID: e.DescriptorID,
			HSDir:        longNameOrEmpty(e.HSDir),
			Content:      e.Content,
		}.Event(), true
	case event.Log:
		return control.LogEvent(e.Severity, e.Message), true
	case *event.BuildTimeoutSet:
		return buildTimeoutEvent(e), true
	case event.Transport:
		if e.Type == "LAUNCHED" {
			// 650 TRANSPORT_LAUNCHED client obfs4 127.0.0.1 38265
			return control.Event{Type: "TRANSPORT_LAUNCHED", Body: "client " + e.Name + " " + e.Addr.Addr().String() + " " + strconv.Itoa(int(e.Addr.Port()))}, true
		}
		// C tor: "650 PT_LOG PT=/usr/bin/obfs4proxy SEVERITY=debug
		// MESSAGE=..." and "650 PT_STATUS PT=... TRANSPORT=obfs4 ...".
		body := "PT=" + e.Program
		for _, kv := range e.Args {
			v := kv[1]
			if v == "" || strings.ContainsAny(v, " \t\"\\=\r\n") {
				v = control.QuoteString(v)
			}
			body += " " + kv[0] + "=" + v
		}
		return control.Event{Type: "PT_" + e.Type, Body: body}, true
	case event.Bootstrap:
		return control.Event{Type: "STATUS_CLIENT", Body: bootstrapPhase(e)}, true
	}
	return control.Event{}, false
}

// buildTimeoutEvent formats BUILDTIMEOUT_SET as C tor does
// (cbt_control_event_buildtimeout_set): milliseconds truncated to
// integers, the rest with six decimals.
func buildTimeoutEvent(e *event.BuildTimeoutSet) control.Event {
	f := func(x float64) string {
		switch {
		case math.IsInf(x, 1):
			return "inf" // as C's printf
		case math.IsInf(x, -1):
			return "-inf"
		case math.IsNaN(x):
			return "nan"
		}
		return strconv.FormatFloat(x, 'f', 6, 64)
	}
	body := e.Type +
		" TOTAL_TIMES=" + strconv.Itoa(e.TotalTimes) +
		" TIMEOUT_MS=" + strconv.FormatInt(e.Timeout.Milliseconds(), 10) +
		" XM=" + strconv.FormatInt(e.Xm.Milliseconds(), 10) +
		" ALPHA=" + f(e.Alpha) +
		" CUTOFF_QUANTILE=" + f(e.Quantile) +
		" TIMEOUT_RATE=" + f(e.TimeoutRate) +
		" CLOSE_MS=" + strconv.FormatInt(e.Close.Milliseconds(), 10) +
		" CLOSE_RATE=" + f(e.CloseRate)
	return control.Event{Type: "BUILDTIMEOUT_SET", Body: body}
}

func circEvent(ci *event.Circuit) control.CircEvent {
	path := make([]string, len(ci.Path))
	for i, r := range ci.Path {
		path[i] = r.LongName()
	}
	return control.CircEvent{
		ID:          strconv.FormatUint(ci.ID, 10),
		Status:      ci.Status,
		Path:        path,
		BuildFlags:  ci.Flags,
		Purpose:     ci.Purpose,
		TimeCreated: ci.Created,
		Reason:      ci.Reason,
	}
}

func streamEvent(si *event.Stream) control.StreamEvent {
	purpose := "USER"
	if si.Resolve || si.Status == "NEWRESOLVE" || si.Status == "SENTRESOLVE" {
		purpose = "DNS_REQUEST"
	}
	// C tor gives SOURCE_ADDR (address:port, no brackets) with NEW and
	// NEWRESOLVE only, and none for a client it has no address of.
	var source string
	if (si.Status == "NEW" || si.Status == "NEWRESOLVE") && si.Source.IsValid() {
		source = si.Source.Addr().Unmap().String() + ":" + strconv.Itoa(int(si.Source.Port()))
	}
	return control.StreamEvent{
		ID:         strconv.FormatUint(si.ID, 10),
		Status:     si.Status,
		CircID:     strconv.FormatUint(si.CircID, 10),
		Target:     si.Target,
		Reason:     si.Reason,
		SourceAddr: source,
		Purpose:    purpose,
	}
}

// channelTarget is the ORCONN target: the relay's LongName when known,
// else its address.
func channelTarget(ch *event.Channel) string {
	if ch.Relay.ID != ([20]byte{}) {
		return ch.Relay.LongName()
	}
	return ch.Addr
}
