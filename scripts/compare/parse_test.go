package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// Field 2 with spaces and a ')' inside; utime 250, stime 50 ticks.
	line := "1234 (tor (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 100 200000 3000 18446744073709551615\n"
	got, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * time.Second; got != want {
		t.Fatalf("cpu %v, want %v", got, want)
	}
	for _, bad := range []string{"", "1234 tor S 1", "1 (a) S 1 2 3", "1 (a) S 1 1 1 0 -1 0 0 0 0 0 x 5 0"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	in := "Name:\ttor\nVmPeak:\t  300000 kB\nVmHWM:\t   48576 kB\nVmRSS:\t   40000 kB\n"
	hwm, rss, err := parseStatus([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if hwm != 48576*1024 || rss != 40000*1024 {
		t.Fatalf("hwm %d rss %d", hwm, rss)
	}
	for _, bad := range []string{"", "VmHWM:\t1 kB\n", "VmHWM:\t1 MB\nVmRSS:\t1 kB\n", "VmHWM:\t-1 kB\nVmRSS:\t1 kB\n"} {
		if _, _, err := parseStatus([]byte(bad)); err == nil {
			t.Errorf("parseStatus(%q) accepted", bad)
		}
	}
}

func TestParseBench(t *testing.T) {
	out := `goos: linux
BenchmarkReadCell-2   	 9876543	       120.5 ns/op	4250.00 MB/s	       0 B/op	       0 allocs/op
BenchmarkParseConsensus-2   	      50	  23000000 ns/op	  60.1 MB/s	 5000000 B/op	   70000 allocs/op	        21.3 cpu-ms/op
BenchmarkReadCell-2 logged something
PASS
`
	lines, err := parseBench("./x/", []byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	if lines[0].Name != "BenchmarkReadCell" || lines[0].Metrics["allocs/op"] != 0 || lines[0].Metrics["ns/op"] != 120.5 {
		t.Fatalf("first line %+v", lines[0])
	}
	if lines[1].Metrics["cpu-ms/op"] != 21.3 {
		t.Fatalf("second line %+v", lines[1])
	}
	if _, err := parseBench("x", []byte("BenchmarkX-2 10 5 ns/op 7\n")); err == nil {
		t.Fatal("odd value/unit fields accepted")
	}
}

func TestReadEnv(t *testing.T) {
	p := filepath.Join(t.TempDir(), "testnet.env")
	body := "TESTNET_TORRC_FRAGMENT=/x/torrc-fragment\nTESTNET_URL_MARKER='http://127.0.0.1:1/'\nTESTNET_MARKER=m\n" +
		"TESTNET_URL_64M=http://127.0.0.1:1/64M\nTESTNET_SHA256_64M=ab\nTESTNET_HTTP_ADDR=127.0.0.1:1\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := readEnv(p)
	if err != nil {
		t.Fatal(err)
	}
	if env["TESTNET_URL_MARKER"] != "http://127.0.0.1:1/" {
		t.Fatalf("quoted value: %q", env["TESTNET_URL_MARKER"])
	}
	if err := os.WriteFile(p, []byte("TESTNET_MARKER=m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readEnv(p); err == nil {
		t.Fatal("missing keys accepted")
	}
}

func FuzzParseProc(f *testing.F) {
	f.Add([]byte("1 (a b) S 1 1 1 0 -1 0 0 0 0 0 7 3 0\n"), []byte("VmHWM:\t1 kB\nVmRSS:\t1 kB\n"))
	f.Add([]byte(")"), []byte(":"))
	f.Fuzz(func(t *testing.T, stat, status []byte) {
		if d, err := parseStat(stat); err == nil && d < 0 {
			t.Fatalf("negative CPU time %v", d)
		}
		if h, r, err := parseStatus(status); err == nil && (h < 0 || r < 0) {
			t.Fatalf("negative memory %d %d", h, r)
		}
		parseBench("x", stat)
	})
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"16M": 16 << 20, "16MiB": 16 << 20, "512K": 512 << 10, "1G": 1 << 30, "1048576": 1 << 20, "64m": 64 << 20} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "M", "-1M", "0", "x16M", "16T", "99999999999G"} {
		if n, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) = %d, accepted", bad, n)
		}
	}
}
