package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"portmirror/model"
	"portmirror/simulator/dataplane"
	"portmirror/simulator/ofsim"
)

// The scale part's big fleet runs its simulated bridges in a child process (this program started again with
// FleetChildEnv set): the controller's process then holds only the controller's side of the 10,000 connections
// (a process may not open more than 20,000 descriptors here, and both ends in one process need that many), its
// RSS is the controller's, store's and API's alone, and its garbage collector does not walk the simulator's flow
// tables.
//
// The parent writes one JSON line (fleetSpec) on the child's standard input; the child starts the bridges and
// answers "ready". Then each line the parent writes is a command, answered by one line: "offline" and "online"
// take every bridge off the network or bring it back ("ok"), "connects" answers the number of connections the
// bridges made so far. The child stops when its standard input ends.

// FleetChildEnv, set to "1" in a process's environment, makes MaybeFleetChild serve as a fleet child.
const FleetChildEnv = "PORTMIRROR_BENCH_FLEET_CHILD"

// FleetChildPprofEnv, set to a loopback address, makes a fleet child serve net/http/pprof there.
const FleetChildPprofEnv = "PORTMIRROR_BENCH_FLEET_PPROF"

// fleetSpec says which bridges a fleet child builds: those of hosts [0, Hosts) of the scale layout.
type fleetSpec struct {
	Controller string   `json:"controller"`
	Hosts      int      `json:"hosts"`
	PerCluster int      `json:"perCluster"`
	FlowNets   []string `json:"flowNetworks"` // by cluster*scaleFNs + k
}

// MaybeFleetChild serves as a fleet child and exits when FleetChildEnv is set; otherwise it returns at once.
// Programs that run the benchmark (portmirror-bench, the bench package's tests) call it first.
func MaybeFleetChild() {
	if os.Getenv(FleetChildEnv) != "1" {
		return
	}
	if addr := os.Getenv(FleetChildPprofEnv); addr != "" {
		// To profile the simulated bridges apart from the controller (go tool pprof http://ADDR/debug/pprof/profile).
		// It lasts as long as the process.
		if _, err := ServePprof(addr); err != nil {
			fmt.Fprintln(os.Stderr, "fleet child:", err)
			os.Exit(1)
		}
	}
	if err := fleetChild(context.Background(), os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fleet child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// ServePprof serves net/http/pprof's index and CPU profile on addr (a loopback address) until stop is called.
func ServePprof(addr string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	return func() { _ = srv.Close(); <-done }, nil
}

// scaleBridge builds host h's bridge of the scale layout: ports v0n0..v9n1 and the tunnel ports of its cluster's
// flow networks.
func scaleBridge(h, per int, fns []string) (*dataplane.Bridge, error) {
	br := dataplane.NewBridge("br-int", dataplane.MAC{0x0a, 1, byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)})
	for v := range scaleVMs {
		for n := range 2 {
			if err := br.AddPort(dataplane.Port{No: scalePortNo(v, n), Name: scalePortName(v, n), Up: true,
				MAC: dataplane.MAC{0x0e, byte(v*2 + n), byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)}}); err != nil {
				return nil, err
			}
		}
	}
	c := h / per
	for k := range scaleFNs {
		if err := br.AddPort(dataplane.Port{No: uint32(scaleTunnelBase + k), Name: model.TunnelPortName(fns[c*scaleFNs+k]), Up: true,
			MAC: dataplane.MAC{0x0e, byte(0x80 + k), byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)}}); err != nil {
			return nil, err
		}
	}
	return br, nil
}

// scaleFleet is the bridges of one scale fleet, running until stop.
type scaleFleet struct {
	sw   []*ofsim.Switch
	stop func()
}

func startScaleFleet(ctx context.Context, spec fleetSpec) (*scaleFleet, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	f := &scaleFleet{stop: func() { cancel(); wg.Wait() }}
	// one pool of reply buffers for the whole fleet, as 10,000 hosts would each have their own few: a storm's read
	// backs no longer allocate a buffer per bridge, fresh pages the kernel faults in (a second of the simulator's
	// CPU in a storm's profile, and most of its variation between runs)
	bufs := &ofsim.Buffers{}
	for h := range spec.Hosts {
		br, err := scaleBridge(h, spec.PerCluster, spec.FlowNets)
		if err != nil {
			f.stop()
			return nil, err
		}
		sw := ofsim.New(ofsim.Config{Controller: spec.Controller, DatapathID: scaleDPID(h), Bridge: br, ProbeInterval: 30 * time.Second,
			MinBackoff: 20 * time.Millisecond, MaxBackoff: time.Second, Buffers: bufs})
		f.sw = append(f.sw, sw)
		wg.Add(1)
		go func() { defer wg.Done(); _ = sw.Run(ctx) }()
	}
	return f, nil
}

func (f *scaleFleet) setOffline(off bool) {
	for _, sw := range f.sw {
		sw.SetOffline(off)
	}
}

func (f *scaleFleet) connects() int {
	n := 0
	for _, sw := range f.sw {
		n += sw.Connects()
	}
	return n
}

// fleetChild is the child's side of the protocol above.
func fleetChild(ctx context.Context, in io.Reader, out io.Writer) error {
	if _, err := raiseFileLimit(); err != nil {
		return err
	}
	rd := bufio.NewReader(in)
	line, err := rd.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read the fleet's spec: %w", err)
	}
	var spec fleetSpec
	if err := json.Unmarshal(line, &spec); err != nil {
		return fmt.Errorf("the fleet's spec: %w", err)
	}
	f, err := startScaleFleet(ctx, spec)
	if err != nil {
		return err
	}
	defer f.stop()
	if _, err := fmt.Fprintln(out, "ready"); err != nil {
		return err
	}
	for {
		line, err := rd.ReadString('\n')
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		var answer string
		switch cmd := strings.TrimSpace(line); cmd {
		case "offline", "online":
			f.setOffline(cmd == "offline")
			answer = "ok"
		case "connects":
			answer = strconv.Itoa(f.connects())
		default:
			return fmt.Errorf("unknown command %q", cmd)
		}
		if _, err := fmt.Fprintln(out, answer); err != nil {
			return err
		}
	}
}

// fleetProc is the parent's handle on a fleet child.
type fleetProc struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	once sync.Once
}

// startFleetChild starts this program again as a fleet child and waits until its bridges are started.
func startFleetChild(ctx context.Context, spec fleetSpec, pprof bool) (*fleetProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	// The simulated bridges are not the controller: the controller's memory limit is not theirs. Only the child
	// asked to (pprof) serves FleetChildPprofEnv's address.
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "GOMEMLIMIT=") || (!pprof && strings.HasPrefix(kv, FleetChildPprofEnv+"="))
	}), FleetChildEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the fleet child: %w", err)
	}
	p := &fleetProc{cmd: cmd, in: in, out: bufio.NewReader(outPipe)}
	b, err := json.Marshal(spec)
	if err != nil {
		p.close()
		return nil, err
	}
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		p.close()
		return nil, fmt.Errorf("fleet child: %w", err)
	}
	if err := p.expect(ctx, "ready"); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// readLine reads the child's next answer line.
func (p *fleetProc) readLine(ctx context.Context) (string, error) {
	type answer struct {
		s   string
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		s, err := p.out.ReadString('\n')
		ch <- answer{strings.TrimSpace(s), err}
	}()
	select {
	case a := <-ch:
		if a.err != nil {
			return "", fmt.Errorf("fleet child: %w", a.err)
		}
		return a.s, nil
	case <-ctx.Done():
		p.close() // ends the read above
		return "", ctx.Err()
	}
}

// do sends one command and returns its answer.
func (p *fleetProc) do(ctx context.Context, cmd string) (string, error) {
	if _, err := fmt.Fprintln(p.in, cmd); err != nil {
		return "", fmt.Errorf("fleet child: %s: %w", cmd, err)
	}
	return p.readLine(ctx)
}

func (p *fleetProc) expect(ctx context.Context, want string) error {
	got, err := p.readLine(ctx)
	if err == nil && got != want {
		err = fmt.Errorf("fleet child answered %q, want %q", got, want)
	}
	return err
}

func (p *fleetProc) setOffline(ctx context.Context, off bool) error {
	cmd := "online"
	if off {
		cmd = "offline"
	}
	got, err := p.do(ctx, cmd)
	if err == nil && got != "ok" {
		err = fmt.Errorf("fleet child answered %q to %s", got, cmd)
	}
	return err
}

func (p *fleetProc) connects(ctx context.Context) (int, error) {
	got, err := p.do(ctx, "connects")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(got)
}

// close ends the child: its standard input closes, it stops its bridges and exits; killed after ten seconds.
func (p *fleetProc) close() {
	p.once.Do(func() {
		_ = p.in.Close()
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
	})
}

// cpu is the CPU time (user and system) the child used so far, from /proc/PID/stat.
func (p *fleetProc) cpu() time.Duration { return pidCPU(p.cmd.Process.Pid) }

// pidCPU is the CPU time (user and system) process pid used so far, from /proc/PID/stat (0 when unknown).
func pidCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command's name (in parentheses, which may hold spaces): utime and stime are the 12th
	// and 13th of those, in clock ticks (100 per second on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}
