// Package memlimit chooses the daemon's soft memory limit (the Go runtime's, runtime/debug.SetMemoryLimit): the
// size the collector works to keep the process under, by collecting more often as it comes near, instead of
// letting the heap grow to twice what is live (GOGC=100). It is soft: a process whose live data exceeds it keeps
// running, the collector then spending at most about half the CPU.
package memlimit

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Setting is what the operator asked for: Auto, None, or a size in bytes.
type Setting struct {
	Auto  bool
	Bytes int64 // 0 with Auto false: no limit
}

// Parse reads "auto", "none" (or "0"), or a size: a number of bytes with an optional unit B, KiB, MiB, GiB, TiB
// (powers of 1024) or KB, MB, GB, TB (powers of 1000), e.g. "2GiB", "1900MiB", "1.5GiB".
func Parse(s string) (Setting, error) {
	t := strings.TrimSpace(s)
	switch strings.ToLower(t) {
	case "auto":
		return Setting{Auto: true}, nil
	case "none", "0":
		return Setting{}, nil
	}
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	num, mult := t, 1.0
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return Setting{}, fmt.Errorf("%q is not auto, none or a size such as 2GiB or 1900MiB", s)
	}
	b := v * mult
	if b < 64<<20 {
		return Setting{}, fmt.Errorf("%q is below 64MiB: the daemon would do little but collect garbage", s)
	}
	if b >= math.MaxInt64 {
		return Setting{}, fmt.Errorf("%q is too large", s)
	}
	return Setting{Bytes: int64(b)}, nil
}

// CgroupShare is the part of a memory cgroup's bound that Auto takes as the soft limit: the rest is left for
// what the Go runtime does not count (the store's memory-mapped files) before the kernel's bound is met.
const CgroupShare = 0.9

// Resolve returns the limit to set (0: none; -1: leave the runtime's as it is) and where it comes from, for the
// log. With Auto, a GOMEMLIMIT in env (which the runtime has applied already) is left as it is (-1); otherwise the lower of the cgroup v2 bounds
// memory.max and memory.high of the process's cgroup (cgroupRoot is where cgroup2 is mounted, procSelf the
// /proc/self directory), times CgroupShare; with neither, no limit.
func Resolve(set Setting, env func(string) string, cgroupRoot, procSelf string) (int64, string, error) {
	switch {
	case set.Bytes > 0:
		return set.Bytes, "the setting", nil
	case !set.Auto:
		return 0, "none asked", nil
	case env("GOMEMLIMIT") != "":
		return -1, "GOMEMLIMIT in the environment", nil
	}
	bound, err := cgroupBound(cgroupRoot, procSelf)
	if err != nil {
		return 0, "", err
	}
	if bound == 0 {
		return 0, "no cgroup memory bound", nil
	}
	return int64(float64(bound) * CgroupShare), fmt.Sprintf("%.0f%% of the cgroup's memory bound (%d bytes)", CgroupShare*100, bound), nil
}

// cgroupBound is the lower of memory.max and memory.high of the process's cgroup v2, 0 when it has neither (or
// no cgroup v2).
func cgroupBound(root, procSelf string) (int64, error) {
	data, err := os.ReadFile(filepath.Join(procSelf, "cgroup"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading the process's cgroup: %w", err)
	}
	dir := ""
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			dir = filepath.Join(root, filepath.Clean("/"+rest))
		}
	}
	if dir == "" {
		return 0, nil // cgroup v1 only
	}
	var bound int64
	for _, name := range []string{"memory.max", "memory.high"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("reading %s: %w", name, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "max" || v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s of %s holds %q: %w", name, dir, v, err)
		}
		if bound == 0 || n < bound {
			bound = n
		}
	}
	return bound, nil
}
