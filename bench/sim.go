package bench

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"portmirror/model"
	"portmirror/simulator/dataplane"
	"portmirror/simulator/ofsim"
)

// tunnelPortNo is the OpenFlow number of the flow network's tunnel port on every simulated bridge.
const tunnelPortNo = 100

// simBridges runs one simulated bridge per fleet host (ports nic0..nic9 as 1..10 and the tunnel port of its
// cluster's flow network), dialling controller. Stop ends them all.
type simBridges struct {
	sw     []*ofsim.Switch
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startSimBridges starts hosts bridges; fnOf gives the flow network uuid of host h (for its tunnel port's name).
func startSimBridges(ctx context.Context, controller string, hosts int, fnOf func(h int) string) (*simBridges, error) {
	ctx, cancel := context.WithCancel(ctx)
	s := &simBridges{cancel: cancel}
	for h := range hosts {
		dp := fleetDPID(h)
		br := dataplane.NewBridge("br-int", dataplane.MAC{0x0a, 0, byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)})
		for j := range nicsPerHost {
			if err := br.AddPort(dataplane.Port{No: uint32(j + 1), Name: fmt.Sprintf("nic%d", j), Up: true,
				MAC: dataplane.MAC{0x0e, byte(j), byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)}}); err != nil {
				cancel()
				return nil, err
			}
		}
		if err := br.AddPort(dataplane.Port{No: tunnelPortNo, Name: model.TunnelPortName(fnOf(h)), Up: true,
			MAC: dataplane.MAC{0x0e, 0xff, byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)}}); err != nil {
			cancel()
			return nil, err
		}
		sw := ofsim.New(ofsim.Config{Controller: controller, DatapathID: dp, Bridge: br, ProbeInterval: 15 * time.Second,
			MinBackoff: 20 * time.Millisecond, MaxBackoff: time.Second})
		s.sw = append(s.sw, sw)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = sw.Run(ctx)
		}()
	}
	return s, nil
}

func (s *simBridges) connected() int {
	n := 0
	for _, sw := range s.sw {
		if sw.Connected() {
			n++
		}
	}
	return n
}

func (s *simBridges) stop() {
	s.cancel()
	s.wg.Wait()
}

// raiseFileLimit lifts RLIMIT_NOFILE as far as it may go (processes started afterwards inherit it) and returns the
// new soft limit.
func raiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	// A fleet in this process holds two descriptors per bridge (both ends of its connection) and more while it
	// reconnects: 10,000 bridges need more than the usual hard limit of 20,000. Root may raise the hard limit too
	// (to fs.nr_open); elsewhere the soft limit goes as far as the hard one allows.
	const want = 1 << 20
	if rl.Max < want {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}); err == nil {
			return want, nil
		}
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}
