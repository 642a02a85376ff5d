package mem

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const meminfo64 = `MemTotal:          65536 kB
MemFree:           20000 kB
MemAvailable:      30000 kB
Buffers:            1000 kB
`

func TestReadInfoNoCgroup(t *testing.T) {
	root := writeFiles(t, map[string]string{"proc/meminfo": meminfo64})
	info, err := ReadInfo(root)
	if err != nil {
		t.Fatal(err)
	}
	if info.MemTotal != 64*MiB || info.MemAvailable != 30000*KiB || info.CgroupVersion != 0 || info.CgroupLimit != 0 {
		t.Fatalf("%+v", info)
	}
}

func TestReadInfoCgroupV2(t *testing.T) {
	root := writeFiles(t, map[string]string{
		"proc/meminfo":     meminfo64,
		"proc/self/cgroup": "0::/system.slice/tinytor.service\n",
		"sys/fs/cgroup/system.slice/tinytor.service/memory.max": "max\n",
		"sys/fs/cgroup/system.slice/memory.max":                 "25165824\n",
	})
	info, err := ReadInfo(root)
	if err != nil {
		t.Fatal(err)
	}
	if info.CgroupVersion != 2 || info.CgroupLimit != 24*MiB {
		t.Fatalf("%+v: want the parent's 24 MiB limit", info)
	}
}

func TestReadInfoCgroupV2Namespace(t *testing.T) {
	root := writeFiles(t, map[string]string{
		"proc/meminfo":             meminfo64,
		"proc/self/cgroup":         "0::/\n",
		"sys/fs/cgroup/memory.max": "16777216",
	})
	info, err := ReadInfo(root)
	if err != nil || info.CgroupLimit != 16*MiB || info.CgroupVersion != 2 {
		t.Fatalf("%+v %v", info, err)
	}
}

func TestReadInfoCgroupV1(t *testing.T) {
	root := writeFiles(t, map[string]string{
		"proc/meminfo":     meminfo64,
		"proc/self/cgroup": "12:cpu,cpuacct:/x\n4:memory:/lxc/router\n1:name=systemd:/\n0::/\n",
		"sys/fs/cgroup/memory/memory.limit_in_bytes":            "9223372036854771712\n",
		"sys/fs/cgroup/memory/lxc/router/memory.limit_in_bytes": "33554432\n",
	})
	info, err := ReadInfo(root)
	if err != nil {
		t.Fatal(err)
	}
	if info.CgroupVersion != 1 || info.CgroupLimit != 32*MiB {
		t.Fatalf("%+v", info)
	}
	// Unlimited v1 only: a version but no limit.
	root = writeFiles(t, map[string]string{
		"proc/meminfo":     meminfo64,
		"proc/self/cgroup": "4:memory:/\n",
		"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
	})
	info, err = ReadInfo(root)
	if err != nil || info.CgroupVersion != 1 || info.CgroupLimit != 0 {
		t.Fatalf("%+v %v", info, err)
	}
}

func TestReadInfoErrors(t *testing.T) {
	if _, err := ReadInfo(t.TempDir()); err == nil {
		t.Fatal("missing meminfo accepted")
	}
	root := writeFiles(t, map[string]string{"proc/meminfo": "MemTotal: lots kB\n"})
	if _, err := ReadInfo(root); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("got %v", err)
	}
	root = writeFiles(t, map[string]string{
		"proc/meminfo": meminfo64, "proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "lots",
	})
	if _, err := ReadInfo(root); err == nil || !strings.Contains(err.Error(), "memory.max") {
		t.Fatalf("got %v", err)
	}
	if _, err := ReadInfo(""); err != nil {
		t.Fatalf("real system: %v", err)
	}
}

func TestPlanFormula(t *testing.T) {
	cases := []struct {
		info      Info
		mmiq      uint64
		queues    uint64
		goLimit   int64
		gcPercent int
	}{
		{Info{MemTotal: 32 * MiB}, 0, 4 * MiB, 24 * MiB, 50},
		{Info{MemTotal: 128 * MiB}, 0, 16 * MiB, 48 * MiB, 75},
		{Info{MemTotal: 8 * MiB}, 0, 2 * MiB, 6 * MiB, 50},
		{Info{MemTotal: 16 << 30}, 0, 256 * MiB, 528 * MiB, 100},
		{Info{MemTotal: 1 << 30, CgroupLimit: 40 * MiB}, 0, 5 * MiB, 26 * MiB, 50},
		{Info{MemTotal: 1 << 30, CgroupLimit: 20 * MiB}, 8 * MiB, 8 * MiB, 15 * MiB, 50},
		{Info{MemTotal: 128 * MiB}, 10 * MiB, 10 * MiB, 36 * MiB, 75},
	}
	for i, c := range cases {
		p, err := NewPlan(c.info, c.mmiq)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if p.MaxMemInQueues != c.queues || p.GoMemLimit != c.goLimit || p.GCPercent != c.gcPercent {
			t.Errorf("case %d: %+v, want queues %d limit %d gc %d", i, p, c.queues, c.goLimit, c.gcPercent)
		}
	}
	if _, err := NewPlan(Info{}, 0); err == nil {
		t.Error("zero MemTotal accepted")
	}
	if _, err := NewPlan(Info{MemTotal: 32 * MiB}, 1000); err == nil {
		t.Error("tiny MaxMemInQueues accepted")
	}
	if _, err := NewPlan(Info{MemTotal: 32 * MiB}, 64*MiB); err == nil {
		t.Error("MaxMemInQueues above RAM accepted")
	}
}

func TestPlanApply(t *testing.T) {
	p, _ := NewPlan(Info{MemTotal: 1 << 30}, 0)
	prevLimit, prevGC := p.Apply()
	defer Plan{GoMemLimit: prevLimit, GCPercent: prevGC}.Apply()
	again, gc := Plan{GoMemLimit: prevLimit, GCPercent: prevGC}.Apply()
	if again != p.GoMemLimit || gc != p.GCPercent {
		t.Fatalf("runtime has limit %d gc %d, want %d %d", again, gc, p.GoMemLimit, p.GCPercent)
	}
	p.Apply()
}

func TestCaps(t *testing.T) {
	p, _ := NewPlan(Info{MemTotal: 32 * MiB}, 0)
	c := p.Caps()
	if c.Circuits != 256 || c.Streams != 1024 || c.QueuedCells != 4*MiB/600 {
		t.Fatalf("%+v", c)
	}
	small := Plan{MaxMemInQueues: 64 * KiB}.Caps()
	if small.Circuits != 16 || small.Streams != 64 {
		t.Fatalf("%+v", small)
	}
}

func TestBudgetPressure(t *testing.T) {
	var heap uint64
	var mu sync.Mutex
	usage := func() uint64 { mu.Lock(); defer mu.Unlock(); return heap }
	b := NewBudget(Caps{Circuits: 10, Streams: 100, QueuedCells: 1000}, 1000, usage)
	if b.Pressure() != PressureNone || !b.AllowNewStream() {
		t.Fatal("idle budget under pressure")
	}
	if !b.Acquire(Circuits, 8) || b.Pressure() != PressureModerate {
		t.Fatalf("8/10 circuits: %v", b.Pressure())
	}
	if !b.Acquire(Circuits, 1) || b.Pressure() != PressureHigh || b.AllowNewStream() {
		t.Fatalf("9/10 circuits: %v", b.Pressure())
	}
	if !b.Acquire(Circuits, 1) || b.Acquire(Circuits, 1) || b.Pressure() != PressureCritical {
		t.Fatalf("10/10 circuits: %v used %d", b.Pressure(), b.Used(Circuits))
	}
	b.Release(Circuits, 10)
	mu.Lock()
	heap = 950
	mu.Unlock()
	if b.Pressure() != PressureHigh {
		t.Fatalf("heap at 95%%: %v", b.Pressure())
	}
	b.Release(Streams, 5)
	if b.Used(Streams) != 0 {
		t.Fatal("over-release went negative")
	}
	if b.Cap(QueuedCells) != 1000 || QueuedCells.String() != "queued cells" || PressureHigh.String() != "high" {
		t.Fatal("accessors")
	}
}

func TestBudgetConcurrentAcquire(t *testing.T) {
	b := NewBudget(Caps{Streams: 50}, 0, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if b.Acquire(Streams, 1) {
					mu.Lock()
					got++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if got != 50 || b.Used(Streams) != 50 {
		t.Fatalf("acquired %d, used %d; want 50", got, b.Used(Streams))
	}
}

func TestRuntimeUsage(t *testing.T) {
	use := newRuntimeUsage()
	u := use()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if u == 0 || u > ms.Sys {
		t.Fatalf("memory in use %d; runtime Sys %d", u, ms.Sys)
	}
	// Garbage does not count once collected.
	garbage := make([][]byte, 0, 64)
	for range 64 {
		garbage = append(garbage, make([]byte, 64<<10))
	}
	withGarbage := use()
	garbage = nil
	_ = garbage
	debug.FreeOSMemory()
	if after := use(); after >= withGarbage {
		t.Errorf("in use: %d with 4 MiB of garbage, %d after collecting it", withGarbage, after)
	}
}

func FuzzParseMeminfo(f *testing.F) {
	f.Add([]byte(meminfo64))
	f.Add([]byte("MemTotal: 1 kB"))
	f.Fuzz(func(t *testing.T, b []byte) {
		total, _, err := ParseMeminfo(b)
		if err == nil && total == 0 {
			t.Fatal("zero total accepted")
		}
	})
}

func FuzzParseProcCgroup(f *testing.F) {
	f.Add([]byte("0::/a/b\n4:memory:/c\n"))
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v2, v1, err := ParseProcCgroup(b)
		if err == nil && ((v2 != "" && v2[0] != '/') || (v1 != "" && v1[0] != '/')) {
			t.Fatalf("relative path accepted: %q %q", v2, v1)
		}
	})
}

func FuzzParseLimit(f *testing.F) {
	f.Add([]byte("max\n"))
	f.Add([]byte("123"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseLimit(b)
	})
}
