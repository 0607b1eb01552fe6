package controller_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"portmirror/controller"
	"portmirror/model"
	"portmirror/service"
	"portmirror/simulator/fleet"
)

// cpuSeconds is the CPU time (user and system) this process has used.
func cpuSeconds(t *testing.T) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// TestSimCounterPollingCost measures what reading the counters costs: N simulated bridges, each the source of a
// session (one in four capped, so also a meter-stats read), read once per period. It logs the reads per second
// (flow-stats and meter-stats requests), and the process's CPU time per second with the reads running against the
// same fleet idle before the sessions existed (the controller and the simulated switches share the process, so
// the difference bounds the controller's share from above). Only with PORTMIRROR_SIM_COUNTER_COST=1 (sizes:
// PORTMIRROR_SIM_BRIDGES, default 1000; PORTMIRROR_SIM_COUNTER_PERIOD_MS, default 1000: 1,000 bridges read every
// second ask as many reads per second as 10,000 bridges read every 10 s, the default period).
func TestSimCounterPollingCost(t *testing.T) {
	if envInt("PORTMIRROR_SIM_COUNTER_COST", 0) == 0 {
		t.Skip("a measurement: PORTMIRROR_SIM_COUNTER_COST=1 runs it")
	}
	bridges := envInt("PORTMIRROR_SIM_BRIDGES", 1000)
	period := time.Duration(envInt("PORTMIRROR_SIM_COUNTER_PERIOD_MS", 1000)) * time.Millisecond
	e := newSimEnv(t, fleet.Uniform(43, bridges, 1, 1), envOptions{noStart: true,
		fleet:      fleet.Options{ProbeInterval: 30 * time.Second, MaxBackoff: 2 * time.Second},
		controller: controller.Options{CounterPeriod: period}})
	f := e.fleet
	if err := f.Start(e.ctx, e.meter.Addr()); err != nil {
		t.Fatal(err)
	}
	e.waitBaseline(120 * time.Second)
	const window = 10 * time.Second
	measure := func() (cpu float64, msgs int64) {
		c0, m0 := cpuSeconds(t), e.meter.Total().Messages
		time.Sleep(window) // a measurement window, not a wait for a condition
		return (cpuSeconds(t) - c0) / window.Seconds(), e.meter.Total().Messages - m0
	}
	time.Sleep(5 * time.Second) // let the connections' setup pass; a measurement, not a wait for a condition
	idleCPU, idleMsgs := measure()

	in := service.PortMirrorInput{Name: "counted", FlowNetworkUUID: f.FlowNetworks[0].UUID, Enable: true}
	senders, monitors := f.Senders(), f.Monitors()
	for i, h := range f.Hosts {
		var src, dst *fleet.NIC
		for _, n := range senders {
			if f.HostOf(n.VM) == h && !n.VM.Monitor {
				src = n
			}
		}
		for _, n := range monitors {
			if f.HostOf(n.VM) == f.Hosts[(i+1)%len(f.Hosts)] {
				dst = n
			}
		}
		si := service.SessionInput{Name: fmt.Sprintf("s%d", i), Type: model.Bidirection, SourceNicUUID: src.UUID, DestinationNicUUID: dst.UUID}
		if i%4 == 0 {
			kbps := 100000
			si.BandwidthLimitKbps = &kbps
		}
		in.Sessions = append(in.Sessions, si)
	}
	pm, err := e.svc.CreatePortMirror(e.ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := e.svc.Sessions(e.ctx, pm.UUID)
	if err != nil {
		t.Fatal(err)
	}
	var ss []fleet.Session
	for _, s := range stored {
		ss = append(ss, fleet.Session{UUID: s.UUID, Name: s.Name, Enabled: true})
	}
	e.waitSettled(ss, 120*time.Second)
	time.Sleep(2 * period) // let the programming's own traffic pass; a measurement, not a wait for a condition
	pollCPU, pollMsgs := measure()
	reads := float64(pollMsgs-idleMsgs) / window.Seconds() // the meter counts what the controller sends: the requests
	t.Logf("%d bridges read every %v: %.0f requests/s (flow stats, and meter stats for the capped quarter); process CPU %.3f s/s idle, %.3f s/s while reading: %.1f ms of CPU per second for the reads, controller and simulated switches together (%.1f µs per read)",
		bridges, period, reads, idleCPU, pollCPU, (pollCPU-idleCPU)*1000, (pollCPU-idleCPU)*1e6/max(reads, 1))
}
