package bench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// Machine describes where the figures were measured.
type Machine struct {
	CPU    string `json:"cpu"`
	NProc  int    `json:"nproc"`
	Memory string `json:"memory"`
	Kernel string `json:"kernel"`
	OVS    string `json:"ovs"`
	Go     string `json:"go"`
	OSKen  string `json:"osken"`
}

func describeMachine() Machine {
	m := Machine{NProc: runtime.NumCPU(), Go: runtime.Version(), OVS: ovsVersion(), CPU: "unknown", Memory: "unknown"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
				m.Memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.OSKen = "not installed"
	if out, err := exec.Command(osKenPython, "-c", "import os_ken, importlib.metadata as m; print(m.version('os-ken'))").Output(); err == nil {
		m.OSKen = strings.TrimSpace(string(out))
	}
	return m
}

// osKenPython is the interpreter Debian's python3-os-ken is installed for (a pyenv shim earlier in PATH may be
// another Python).
const osKenPython = "/usr/bin/python3"
