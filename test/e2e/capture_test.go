package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Capture is tcpdump running inside a VM's namespace on one of its NICs, writing
// every frame (promiscuous, unbuffered, immediate mode) to a pcap file.
type Capture struct {
	NIC  *NIC
	Path string

	cmd       *exec.Cmd
	listening chan struct{}
	exited    chan struct{}
	mu        sync.Mutex
	stderr    bytes.Buffer
	waitErr   error
	stopped   bool
}

// StartCapture starts tcpdump on nic inside its VM and returns once tcpdump says it
// is listening (the packet socket is open and capturing). It is stopped at the end
// of the test if the test does not stop it.
func StartCapture(t testing.TB, nic *NIC) *Capture {
	t.Helper()
	dir := nic.VM.topo.Dir
	c := &Capture{
		NIC:       nic,
		Path:      filepath.Join(dir, fmt.Sprintf("%s-%s-%s.pcap", nic.VM.Name, nic.Name, randSuffix(4))),
		listening: make(chan struct{}),
		exited:    make(chan struct{}),
	}
	// -Z root: tcpdump would otherwise drop to the tcpdump user before creating the
	// file; --immediate-mode: without it frames wait in the kernel's TPACKET_V3 block
	// until it fills or times out, and are lost when tcpdump is interrupted first.
	c.cmd = exec.Command("ip", "netns", "exec", nic.VM.Netns, "tcpdump",
		"-i", nic.Name, "-n", "-U", "--immediate-mode", "-Z", "root", "-s", "0", "-w", c.Path)
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start tcpdump in VM %s: %v", nic.VM.Name, err)
	}
	t.Cleanup(func() { c.stop() })
	// The reader goroutine is owned by the capture: it ends when tcpdump exits
	// (stderr reaches EOF), then reaps it.
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.stderr.WriteString(line + "\n")
			c.mu.Unlock()
			if !signalled && strings.Contains(line, "listening on") {
				signalled = true
				close(c.listening)
			}
		}
		err := c.cmd.Wait()
		c.mu.Lock()
		c.waitErr = err
		c.mu.Unlock()
		close(c.exited)
	}()
	select {
	case <-c.listening:
	case <-c.exited:
		t.Fatalf("tcpdump in VM %s on %s exited before listening: %v\n%s", nic.VM.Name, nic.Name, c.waitErr, c.Stderr())
	case <-time.After(10 * time.Second):
		t.Fatalf("tcpdump in VM %s on %s not listening after 10s:\n%s", nic.VM.Name, nic.Name, c.Stderr())
	}
	t.Logf("e2e: tcpdump on VM %s %s listening after %v", nic.VM.Name, nic.Name, time.Since(start).Round(time.Millisecond))
	return c
}

// Stderr returns what tcpdump wrote to stderr so far.
func (c *Capture) Stderr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

// Frames returns the frames captured so far (tcpdump writes each one as it comes).
func (c *Capture) Frames(t testing.TB) []Frame {
	t.Helper()
	b, err := os.ReadFile(c.Path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	frames, err := parsePcap(b)
	if err != nil {
		t.Fatalf("capture on VM %s %s: %v", c.NIC.VM.Name, c.NIC.Name, err)
	}
	return frames
}

// WaitFor polls the capture until cond holds for the frames so far, and returns
// them; after timeout it fails the test listing what was captured.
func (c *Capture) WaitFor(t testing.TB, timeout time.Duration, what string, cond func([]Frame) bool) []Frame {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		frames := c.Frames(t)
		if cond(frames) {
			return frames
		}
		if time.Now().After(deadline) {
			t.Fatalf("capture on VM %s %s: %s: not seen after %v; captured:\n%s", c.NIC.VM.Name, c.NIC.Name, what, timeout, FramesString(frames))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop interrupts tcpdump (SIGINT, by pid), waits for it to exit and returns every
// frame it captured.
func (c *Capture) Stop(t testing.TB) []Frame {
	t.Helper()
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	return c.Frames(t)
}

func (c *Capture) stop() error {
	c.mu.Lock()
	already := c.stopped
	c.stopped = true
	c.mu.Unlock()
	if already {
		<-c.exited
		return nil
	}
	// ip netns exec execs tcpdump in place, so this pid is tcpdump's.
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("tcpdump in VM %s ignored SIGINT, killed:\n%s", c.NIC.VM.Name, c.Stderr())
	}
	// "1 packet captured", "0 packets captured", ...
	if se := c.Stderr(); !strings.Contains(se, "packets captured") && !strings.Contains(se, "packet captured") {
		return fmt.Errorf("tcpdump in VM %s ended abnormally (%v):\n%s", c.NIC.VM.Name, c.waitErr, c.Stderr())
	}
	return nil
}

// ExpectPing waits until the capture holds at least want of ping run p, stops the
// capture and fails unless it holds exactly want (Other included). It returns the
// frames and, per echo request copy, the latency from sending to capture.
func (c *Capture) ExpectPing(t testing.TB, p PingResult, want PingCount, timeout time.Duration) ([]Frame, []time.Duration) {
	t.Helper()
	c.WaitFor(t, timeout, fmt.Sprintf("%+v of ping %s->%s id %d", want, p.Src, p.Dst, p.ID), func(fs []Frame) bool {
		got := CountPing(fs, p)
		return got.Requests >= want.Requests && got.Replies >= want.Replies && got.Other >= want.Other
	})
	frames := c.Stop(t)
	if got := CountPing(frames, p); got != want {
		t.Fatalf("capture on VM %s %s: ping %s->%s id %d: got %+v, want %+v; captured:\n%s",
			c.NIC.VM.Name, c.NIC.Name, p.Src, p.Dst, p.ID, got, want, FramesString(frames))
	}
	var lat []time.Duration
	for _, f := range frames {
		if f.ICMPID == p.ID && f.IsEcho(ICMPEchoRequest, p.Src, p.Dst) && int(f.ICMPSeq) < len(p.SentAt) {
			lat = append(lat, f.Time.Sub(p.SentAt[f.ICMPSeq]))
		}
	}
	return frames, lat
}
