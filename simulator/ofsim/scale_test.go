package ofsim

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"portmirror/ofwire"
	"portmirror/simulator/dataplane"
	"portmirror/simulator/internal/testctl"
)

// TestScaleThousandBridges connects 1,000 simulated bridges (10 ports each) to a minimal controller in this
// process, which negotiates, reads features and port-desc, installs 20 flows and confirms with a barrier on
// each; it reports heap and CPU per bridge.
func TestScaleThousandBridges(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test skipped with -short")
	}
	const nBridges, nPorts, nFlows = 1000, 10, 20
	flowMsgs := make([][]byte, nFlows)
	for i := range nFlows {
		flowMsgs[i] = flowModMsg(t, uint32(i+10), fmt.Sprintf("cookie=0x504d%012x,priority=%d,in_port=%d,actions=NORMAL,set_field:%d->tun_id,set_field:198.18.0.2->tun_dst,output:%d",
			i, 100+i, i%nPorts+1, i, (i+1)%nPorts+1), fmOpts{cmd: ofwire.FlowAdd})
	}
	var script []byte
	for _, fm := range flowMsgs {
		script = append(script, fm...)
	}
	ctl := testctl.Start(t, func(uint64) []byte { return script })

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()

	ctx, cancel := context.WithCancel(context.Background())
	var swWG sync.WaitGroup
	switches := make([]*Switch, nBridges)
	for i := range nBridges {
		br := dataplane.NewBridge("br-int", dataplane.MAC{2, 0xfe, 0, 0, byte(i >> 8), byte(i)})
		for p := 1; p <= nPorts; p++ {
			if err := br.AddPort(dataplane.Port{No: uint32(p), Name: fmt.Sprintf("vnet%d", p), Up: true, MAC: dataplane.MAC{2, 1, 0, byte(i >> 8), byte(i), byte(p)}}); err != nil {
				t.Fatal(err)
			}
		}
		switches[i] = New(Config{Controller: ctl.Addr(), DatapathID: uint64(i + 1), Bridge: br, MinBackoff: 20 * time.Millisecond, MaxBackoff: time.Second})
		swWG.Add(1)
		go func(s *Switch) { defer swWG.Done(); _ = s.Run(ctx) }(switches[i])
	}
	defer func() { cancel(); swWG.Wait() }()

	ctl.WaitProgrammed(nBridges, 15*time.Second)
	elapsed := time.Since(start)
	for _, s := range switches {
		if n := s.Bridge().FlowCount(); n != nFlows {
			t.Fatalf("bridge %016x holds %d flows, want %d", s.DatapathID(), n, nFlows)
		}
	}
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	heap := (int64(after.HeapInuse) - int64(before.HeapInuse)) / nBridges
	stack := (int64(after.StackInuse) - int64(before.StackInuse)) / nBridges
	t.Logf("%d bridges x %d ports, %d flows each, connected and programmed in %v", nBridges, nPorts, nFlows, elapsed.Round(time.Millisecond))
	t.Logf("per bridge (test controller included): heap in use %.1f KiB, goroutine stacks %.1f KiB, CPU %v (process total %v)",
		float64(heap)/1024, float64(stack)/1024, (cpu / nBridges).Round(time.Microsecond), cpu.Round(time.Millisecond))
	t.Logf("goroutines: %d", runtime.NumGoroutine())
	if heap > 256<<10 {
		t.Errorf("heap per bridge %d bytes: more than 256 KiB", heap)
	}
}
