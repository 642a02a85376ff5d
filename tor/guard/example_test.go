package guard_test

import (
	"fmt"
	"os"
	"time"

	"tinytor/board/state"
	"tinytor/tor/dir"
	"tinytor/tor/guard"
	"tinytor/tor/path"
)

// exampleDir is a small directory: ten guards with microdescriptors.
func exampleDir(now time.Time) *path.Dir {
	c := &dir.Consensus{ValidAfter: now.Add(-time.Hour), FreshUntil: now, ValidUntil: now.Add(2 * time.Hour)}
	mds := map[[32]byte]*dir.Microdesc{}
	for i := 0; i < 10; i++ {
		r := dir.Relay{Bandwidth: 1000, Nickname: fmt.Sprintf("guard%d", i), ORPort: 9001,
			Flags: guard.DefaultGuardFlags}
		r.Identity[0], r.Microdesc[0] = byte(i+1), byte(i+1)
		r.Addr = [4]byte{127, 0, 0, 1}
		c.Relays = append(c.Relays, r)
		mds[r.Microdesc] = &dir.Microdesc{Digest: r.Microdesc, HasNtorKey: true}
	}
	return path.NewDir(c, mds)
}

// Example shows the wiring a client does: persistence through
// board/state, a new directory, and one circuit's life.
func Example() {
	stateDir, err := os.MkdirTemp("", "guard-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(stateDir)
	st, err := state.Open(stateDir, state.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	store := guard.Funcs{
		ReadFunc:  st.Read,
		WriteFunc: func(name string, b []byte) error { return st.Write(name, b, state.TimeDependent) },
	}
	mgr := guard.New(guard.Options{Now: clock, Store: store})
	mgr.SetConsensus(exampleDir(now)) // on every new consensus or microdescriptor batch

	g, h, err := mgr.Pick(guard.ForCircuit, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	// ... connect to g, CREATE2, EXTEND2 twice ...
	_ = g
	h.Succeeded()
	fmt.Println("usable:", h.Usable(), "state:", h.State())
	h.Close() // when the circuit is closed

	if err := st.Close(); err != nil {
		fmt.Println(err)
		return
	}
	// A restart finds the same primary guards.
	st, _ = state.Open(stateDir, state.Options{})
	defer st.Close()
	store.ReadFunc = st.Read
	mgr2 := guard.New(guard.Options{Now: clock, Store: store})
	mgr2.SetConsensus(exampleDir(now))
	fmt.Println("same primaries:", fmt.Sprint(mgr.Primary()) == fmt.Sprint(mgr2.Primary()))
	// Output:
	// usable: true state: complete
	// same primaries: true
}
