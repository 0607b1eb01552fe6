package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"syscall"
	"time"

	"portmirror/controller"
	"portmirror/internal/testpki"
	"portmirror/internal/tlsfiles"
	"portmirror/simulator/dataplane"
	"portmirror/simulator/ofsim"
)

// partTLS measures what TLS costs a switch connect: one reconnect storm of simulated bridges over plain TCP, then
// the same over TLS with ECDSA P-256 certificates and with RSA 2048 ones (what ovs-pki makes), in one run.
func (b *bencher) partTLS(ctx context.Context) {
	s := section{title: "7. TLS handshake cost per switch connect", command: b.command("tls")}
	if err := b.tlsStorm(ctx, &s); err != nil {
		b.fail("tls", err)
	}
	b.res.sections = append(b.res.sections, s)
}

// tlsMode is one way of connecting: plain, or TLS with a server and a client configuration.
type tlsMode struct {
	name           string
	server, client *tls.Config
}

func tlsModes(dir string) ([]tlsMode, error) {
	modes := []tlsMode{{name: "plain"}}
	for _, k := range []struct {
		name string
		bits int
	}{{"tls_ecdsa", 0}, {"tls_rsa2048", 2048}} {
		ca, err := testpki.NewRSACA(dir, k.name, k.bits)
		if err != nil {
			return nil, err
		}
		ctrl, err := ca.Issue("controller")
		if err != nil {
			return nil, err
		}
		sw, err := ca.Issue("switch")
		if err != nil {
			return nil, err
		}
		srvSet, err := tlsfiles.Load(tlsfiles.Files{Cert: ctrl.CertFile, Key: ctrl.KeyFile, CA: ca.CertFile})
		if err != nil {
			return nil, err
		}
		cliSet, err := tlsfiles.Load(tlsfiles.Files{Cert: sw.CertFile, Key: sw.KeyFile, CA: ca.CertFile})
		if err != nil {
			return nil, err
		}
		m := tlsMode{name: k.name}
		if m.server, err = srvSet.Server(tlsfiles.RequireClientCert, nil); err != nil {
			return nil, err
		}
		if m.client, err = cliSet.Client(); err != nil {
			return nil, err
		}
		modes = append(modes, m)
	}
	return modes, nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (b *bencher) tlsStorm(ctx context.Context, s *section) error {
	n := b.scaled(1000)
	if _, err := raiseFileLimit(); err != nil {
		b.log.Warn("the open-file limit may be too low for the bridge count", "err", err)
	}
	dir, err := os.MkdirTemp("", "pmtls")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	modes, err := tlsModes(dir)
	if err != nil {
		return err
	}
	s.header = []string{"connection", "bridges", "storm: all registered after", "CPU per connect (both ends)", "extra per connect vs plain (CPU)"}
	var plainCPU time.Duration
	for _, m := range modes {
		wall, cpu, err := b.tlsStormOnce(ctx, n, m)
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		per := cpu / time.Duration(n)
		extra := "-"
		if m.name == "plain" {
			plainCPU = per
		} else {
			extra = fmt.Sprintf("%.2f ms", ms(per-plainCPU))
			b.res.add(Figure{Name: "tls." + m.name + ".extra_cpu_ms_per_connect", Value: ms(per - plainCPU), Unit: "ms", Command: b.command("tls")})
		}
		b.res.add(Figure{Name: "tls." + m.name + ".storm_ms", Value: ms(wall), Unit: "ms", Command: b.command("tls")})
		b.res.add(Figure{Name: "tls." + m.name + ".cpu_ms_per_connect", Value: ms(per), Unit: "ms", Command: b.command("tls")})
		s.rows = append(s.rows, []string{m.name, fmt.Sprint(n), fmt.Sprintf("%.0f ms", ms(wall)), fmt.Sprintf("%.2f ms", ms(per)), extra})
	}
	s.how = fmt.Sprintf("%d simulated bridges (`simulator/ofsim`, in this process) connect to an OpenFlow listener "+
		"(`controller.Server`, in this process, no reconciliation: the connect alone). Once all are registered they all go "+
		"offline; once the listener has seen every one go, all come back at once: the time is from that moment to every "+
		"bridge registered again (TCP, the TLS handshake with client certificate verification where on, OpenFlow hello, "+
		"features, port description, the bundle probe). CPU is this process's user and system time over the storm "+
		"divided by the bridges: both ends of every handshake run here, so the controller's own share is about half of "+
		"the TLS extra. ECDSA P-256 certificates from `internal/testpki`; RSA 2048 as `ovs-pki` makes them.", n)
	return nil
}

func (b *bencher) tlsStormOnce(ctx context.Context, n int, m tlsMode) (time.Duration, time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv, err := controller.Listen(controller.Config{Addr: "127.0.0.1:0", Logger: b.quiet, TLS: m.server, HandshakeTimeout: time.Minute})
	if err != nil {
		return 0, 0, err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		<-served
	}()
	sims := &simBridges{cancel: cancel}
	for i := range n {
		br := dataplane.NewBridge("br-int", dataplane.MAC{0x0a, 1, 0, 0, byte(i >> 8), byte(i)})
		if err := br.AddPort(dataplane.Port{No: 1, Name: "nic0", Up: true, MAC: dataplane.MAC{0x0e, 1, 0, 0, byte(i >> 8), byte(i)}}); err != nil {
			return 0, 0, err
		}
		sw := ofsim.New(ofsim.Config{Controller: srv.Addr().String(), DatapathID: 0x20_0000 + uint64(i), Bridge: br,
			ProbeInterval: 30 * time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: time.Second, TLS: m.client})
		sims.sw = append(sims.sw, sw)
		sims.wg.Add(1)
		go func() {
			defer sims.wg.Done()
			_ = sw.Run(ctx)
		}()
	}
	defer sims.stop()
	registered := func(want int) func() bool { return func() bool { return len(srv.Switches()) == want } }
	if err := waitUntil(ctx, 2*time.Minute, "every bridge to connect", registered(n)); err != nil {
		return 0, 0, err
	}
	for _, sw := range sims.sw {
		sw.SetOffline(true)
	}
	if err := waitUntil(ctx, time.Minute, "every bridge to go", registered(0)); err != nil {
		return 0, 0, err
	}
	cpu0, t0 := cpuTime(), time.Now()
	for _, sw := range sims.sw {
		sw.SetOffline(false)
	}
	if err := waitUntil(ctx, 2*time.Minute, "every bridge to come back", registered(n)); err != nil {
		return 0, 0, err
	}
	return time.Since(t0), cpuTime() - cpu0, nil
}
