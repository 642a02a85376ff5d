// Package mem sizes tinytor for the machine it runs on: it reads total RAM
// and cgroup memory limits, derives the Go memory limit, GC percent and
// MaxMemInQueues, and keeps a Budget of circuits, streams and queued cells
// whose Pressure the core checks before taking on more work.
//
// # Formula
//
// With Effective = min(MemTotal, cgroup limit) (the cgroup limit counts only
// if set and below MemTotal):
//
//	MaxMemInQueues (auto) = clamp(Effective/8, 2 MiB, 256 MiB)
//	Budget                = min(2*MaxMemInQueues + 16 MiB, Effective*3/4)
//	                        and, under a cgroup limit, at most 90% of it
//	GoMemLimit            = Budget - CodeSize (at most half the Budget)
//	GCPercent             = 50 below 64 MiB, 75 below 256 MiB, else 100
//
// 16 MiB is the measured floor of the binary itself (code, runtime,
// directory data); twice the queue allowance leaves the collector room.
// The Budget is the whole process's resident memory (VmRSS): the program's
// code and read-only data (CodeSize, the executable's size: its pages are
// resident once run) are part of it, and the Go runtime gets the rest.
// A 32 MiB router gets 4 MiB of queues and a 24 MiB budget; a 128 MiB
// one gets 16 MiB and 48 MiB.
package mem

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"tinytor/tor/errfmt"
)

// Info is what the system says about memory.
type Info struct {
	// MemTotal and MemAvailable are from /proc/meminfo, in bytes
	// (MemAvailable is 0 on kernels before 3.14).
	MemTotal, MemAvailable uint64
	// CgroupLimit is the tightest cgroup memory limit on our cgroup path
	// in bytes, 0 if none.
	CgroupLimit uint64
	// CgroupVersion is 1 or 2 when a memory cgroup was found, else 0.
	CgroupVersion int
	// CodeSize is the size of the program's executable, in bytes: its
	// pages count in the process's memory but not in the Go runtime's.
	// 0 if unknown.
	CodeSize uint64
}

// ReadInfo reads /proc/meminfo, /proc/self/cgroup and the cgroup memory
// limit files under root ("" or "/" for the real system; tests pass a
// fixture directory).
func ReadInfo(root string) (Info, error) {
	if root == "" {
		root = "/"
	}
	var info Info
	name := filepath.Join(root, "proc/meminfo")
	b, err := os.ReadFile(name)
	if err != nil {
		return info, errfmt.Errorf("mem: %w", err)
	}
	if info.MemTotal, info.MemAvailable, err = ParseMeminfo(b); err != nil {
		return info, fileError(name, err)
	}
	name = filepath.Join(root, "proc/self/cgroup")
	cg, err := os.ReadFile(name)
	if err != nil {
		// No cgroup information (old kernel, chroot): no limit.
		return info, nil
	}
	v2path, v1path, err := ParseProcCgroup(cg)
	if err != nil {
		return info, fileError(name, err)
	}
	// The v1 memory controller's limit, else the v2 one.
	for _, c := range [...]struct {
		version           int
		path, mount, file string
	}{
		{1, v1path, "sys/fs/cgroup/memory", "memory.limit_in_bytes"},
		{2, v2path, "sys/fs/cgroup", "memory.max"},
	} {
		if c.path == "" {
			continue
		}
		lim, ok, err := tightest(filepath.Join(root, c.mount), c.path, c.file)
		if err != nil {
			return info, err
		}
		if ok {
			info.CgroupVersion, info.CgroupLimit = c.version, lim
			break
		}
	}
	return info, nil
}

// fileError wraps err, which is about the content of file name.
func fileError(name string, err error) error {
	return errfmt.Errorf("mem: %s: %w", name, err)
}

// unlimitedV1 is the smallest value cgroup v1 uses for "no limit" on any
// page size (LONG_MAX rounded down to a page).
const unlimitedV1 = 1 << 62

// tightest reads file in cgroup dir and all its ancestors below mount and
// returns the smallest limit. ok is false if no limit file exists. A
// cgroup namespace may hide ancestors: then the path's files are looked up
// directly under mount as well.
func tightest(mount, cgpath, file string) (limit uint64, ok bool, err error) {
	// filepath, not path: on Linux they treat the cgroup's slash path
	// alike, and filepath is linked already.
	p := filepath.Clean("/" + cgpath)
	for {
		name := filepath.Join(mount, p, file)
		b, rerr := os.ReadFile(name)
		if rerr == nil {
			v, unlimited, perr := ParseLimit(b)
			if perr != nil {
				return 0, false, fileError(name, perr)
			}
			ok = true
			if !unlimited && (limit == 0 || v < limit) {
				limit = v
			}
		} else if !errors.Is(rerr, os.ErrNotExist) {
			return 0, false, errfmt.Errorf("mem: %w", rerr)
		}
		if p == "/" {
			break
		}
		p = filepath.Dir(p)
	}
	return limit, ok, nil
}

// ParseMeminfo returns MemTotal and MemAvailable in bytes from the text of
// /proc/meminfo. MemTotal is required.
func ParseMeminfo(b []byte) (total, available uint64, err error) {
	haveTotal := false
	for i, ln := range strings.Split(string(b), "\n") {
		key, rest, ok := strings.Cut(ln, ":")
		if !ok || (key != "MemTotal" && key != "MemAvailable") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, lineError(i, key+`: want "<number> kB", got `, strings.TrimSpace(rest), "")
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || v > 1<<53 {
			return 0, 0, lineError(i, key+": bad number ", f[0], "")
		}
		if key == "MemTotal" {
			total, haveTotal = v*1024, true
		} else {
			available = v * 1024
		}
	}
	if !haveTotal || total == 0 {
		return 0, 0, errors.New("no MemTotal line")
	}
	return total, available, nil
}

// lineError says what is wrong with value on the line of index i:
// "line <i+1>: <before><quoted value><after>".
func lineError(i int, before, value, after string) error {
	return errfmt.Errorf("line %d: %s%q%s", i+1, before, value, after)
}

// ParseProcCgroup returns the cgroup v2 path (the "0::" line) and the
// cgroup v1 memory controller path from the text of /proc/self/cgroup.
// Either is "" if absent.
func ParseProcCgroup(b []byte) (v2, v1 string, err error) {
	for i, ln := range strings.Split(string(b), "\n") {
		if ln == "" {
			continue
		}
		parts := strings.SplitN(ln, ":", 3)
		if len(parts) != 3 {
			return "", "", lineError(i, "", ln, ": want id:controllers:path")
		}
		if !strings.HasPrefix(parts[2], "/") {
			return "", "", lineError(i, "cgroup path ", parts[2], " is not absolute")
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				v1 = parts[2]
			}
		}
	}
	return v2, v1, nil
}

// ParseLimit parses a cgroup memory limit file: a byte count, or "max"
// (v2) / a huge value (v1) meaning unlimited.
func ParseLimit(b []byte) (limit uint64, unlimited bool, err error) {
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, true, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, errfmt.Errorf("bad memory limit %q: want bytes or \"max\"", s)
	}
	if v >= unlimitedV1 {
		return 0, true, nil
	}
	return v, false, nil
}
