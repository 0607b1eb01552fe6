package memlimit

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Setting
		bad  bool
	}{
		{in: "auto", want: Setting{Auto: true}},
		{in: "AUTO", want: Setting{Auto: true}},
		{in: "none", want: Setting{}},
		{in: "0", want: Setting{}},
		{in: "2GiB", want: Setting{Bytes: 2 << 30}},
		{in: "1900MiB", want: Setting{Bytes: 1900 << 20}},
		{in: "1.5GiB", want: Setting{Bytes: 3 << 29}},
		{in: "2GB", want: Setting{Bytes: 2e9}},
		{in: "134217728", want: Setting{Bytes: 128 << 20}},
		{in: " 512 MiB ", want: Setting{Bytes: 512 << 20}},
		{in: "10MiB", bad: true}, // too small to run
		{in: "-1GiB", bad: true},
		{in: "lots", bad: true},
		{in: "2XiB", bad: true},
		{in: "", bad: true},
	} {
		got, err := Parse(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("Parse(%q) = %+v, %v; want %+v (error: %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

// fakeCgroup lays out /proc/self/cgroup and the cgroup's files under a temp dir.
func fakeCgroup(t *testing.T, procCgroup string, files map[string]string) (root, proc string) {
	t.Helper()
	dir := t.TempDir()
	root, proc = filepath.Join(dir, "cgroup"), filepath.Join(dir, "proc")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "system.slice", "portmirrord.service"), 0o755))
	must(os.MkdirAll(proc, 0o755))
	must(os.WriteFile(filepath.Join(proc, "cgroup"), []byte(procCgroup), 0o644))
	for name, v := range files {
		must(os.WriteFile(filepath.Join(root, "system.slice", "portmirrord.service", name), []byte(v), 0o644))
	}
	return root, proc
}

func TestResolve(t *testing.T) {
	noEnv := func(string) string { return "" }
	const unit = "0::/system.slice/portmirrord.service\n"
	for _, tc := range []struct {
		name  string
		set   Setting
		env   func(string) string
		proc  string
		files map[string]string
		want  int64
	}{
		{name: "a size wins", set: Setting{Bytes: 3 << 30}, env: noEnv, proc: unit, files: map[string]string{"memory.max": "1073741824"}, want: 3 << 30},
		{name: "none", set: Setting{}, env: noEnv, proc: unit, files: map[string]string{"memory.max": "1073741824"}, want: 0},
		{name: "auto: the lower cgroup bound", set: Setting{Auto: true}, env: noEnv, proc: unit,
			files: map[string]string{"memory.max": "4294967296", "memory.high": "2147483648"}, want: 1932735283},
		{name: "auto: no bound", set: Setting{Auto: true}, env: noEnv, proc: unit, files: map[string]string{"memory.max": "max\n", "memory.high": "max"}, want: 0},
		{name: "auto: GOMEMLIMIT left to the runtime", set: Setting{Auto: true},
			env: func(k string) string { return map[string]string{"GOMEMLIMIT": "1GiB"}[k] }, proc: unit, files: map[string]string{"memory.max": "4294967296"}, want: -1},
		{name: "auto: cgroup v1 only", set: Setting{Auto: true}, env: noEnv, proc: "4:memory:/x\n", want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, proc := fakeCgroup(t, tc.proc, tc.files)
			got, why, err := Resolve(tc.set, tc.env, root, proc)
			if err != nil || got != tc.want {
				t.Errorf("Resolve = %d (%s), %v; want %d", got, why, err, tc.want)
			}
		})
	}
	root, proc := fakeCgroup(t, unit, map[string]string{"memory.max": "lots"})
	if _, _, err := Resolve(Setting{Auto: true}, noEnv, root, proc); err == nil {
		t.Error("a memory.max that is not a number was taken")
	}
}
