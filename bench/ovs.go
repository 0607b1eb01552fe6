package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"portmirror/internal/ovstest"
)

// ovsMissing names the OVS programs (and schema) that are not installed, "" when all are.
func ovsMissing() string { return strings.Join(ovstest.Missing(ovstest.Options{}), ", ") }

// ovsVersion is ovs-vswitchd's version line.
func ovsVersion() string { return ovstest.Version() }

// ovs is an ovsdb-server and an ovs-vswitchd (dummy datapath) of our own, in a private run directory, stopped by
// the pids in their pidfiles.
type ovs struct{ *ovstest.OVS }

func startOVS(ctx context.Context) (*ovs, error) {
	o, err := ovstest.Start(ctx, ovstest.Options{DirPrefix: "pmbench"})
	if err != nil {
		return nil, err
	}
	return &ovs{o}, nil
}

// addBridge creates a secure-mode OpenFlow 1.3 bridge on the dummy datapath with the given ports (name -> ofport),
// without a controller.
func (o *ovs) addBridge(ctx context.Context, name, dpid string, ports map[string]uint32) error {
	args := []string{"add-br", name, "--", "set", "bridge", name, "datapath_type=dummy", "protocols=OpenFlow13",
		"fail_mode=secure", "other-config:datapath-id=" + dpid}
	for p, no := range ports {
		args = append(args, "--", "add-port", name, p, "--", "set", "interface", p, "type=internal", fmt.Sprintf("ofport_request=%d", no))
	}
	_, err := o.Vsctl(ctx, args...)
	return err
}

// setController points the bridge at one controller target, or none when target is "".
func (o *ovs) setController(ctx context.Context, br, target string) error {
	if target == "" {
		_, err := o.Vsctl(ctx, "del-controller", br)
		return err
	}
	_, err := o.Vsctl(ctx, "set-controller", br, target)
	return err
}

// flowCount is the number of flows in every table of the bridge (ovs-ofctl dump-aggregate).
func (o *ovs) flowCount(ctx context.Context, br string) (int, error) {
	out, err := o.Ofctl(ctx, "dump-aggregate", br)
	if err != nil {
		return 0, err
	}
	i := strings.Index(out, "flow_count=")
	if i < 0 {
		return 0, fmt.Errorf("dump-aggregate %s: no flow_count in %q", br, out)
	}
	f := strings.Fields(out[i+len("flow_count="):])
	if len(f) == 0 {
		return 0, fmt.Errorf("dump-aggregate %s: no flow_count in %q", br, out)
	}
	return strconv.Atoi(f[0])
}

// clear deletes every flow of the bridge and checks it is empty.
func (o *ovs) clear(ctx context.Context, br string) error {
	if _, err := o.Ofctl(ctx, "del-flows", br); err != nil {
		return err
	}
	n, err := o.flowCount(ctx, br)
	if err != nil {
		return err
	}
	if n != 0 {
		return fmt.Errorf("bridge %s still holds %d flows after del-flows", br, n)
	}
	return nil
}

// waitIdle waits until ovs-vswitchd has used at most 10 ms of CPU in each of two 100 ms windows in a row (its
// work for the last round, such as freeing the rules a del-flows removed, done), for at most limit; it says
// whether it saw that. Each round then starts on an idle switch, whichever contender ran before it.
func (o *ovs) waitIdle(ctx context.Context, limit time.Duration) bool {
	pid := o.VswitchdPid()
	if pid == 0 {
		return false
	}
	deadline := time.Now().Add(limit)
	last, quiet := pidCPU(pid), 0
	for quiet < 2 {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(100 * time.Millisecond)
		now := pidCPU(pid)
		if now-last <= 10*time.Millisecond {
			quiet++
		} else {
			quiet = 0
		}
		last = now
	}
	return true
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
