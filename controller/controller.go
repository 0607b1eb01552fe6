package controller

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"portmirror/internal/flowcache"
	"portmirror/model"
	"portmirror/service"
	"portmirror/store"
	"portmirror/topology"
)

// Options configure a Controller.
type Options struct {
	Service   *service.Service
	Logger    *slog.Logger
	Listen    string // OpenFlow listen address, e.g. ":6653"
	Advertise string // controller target set on OVSDB-managed bridges, e.g. "tcp:192.0.2.1:6653"; "" leaves them
	// OVSDBTLS is the client configuration for hosts whose ovsdbAddress is ssl:IP:PORT; nil refuses them.
	OVSDBTLS *tls.Config
	// Server tunes the OpenFlow connections; its Addr, Handler and Logger are set by the controller.
	Server Config
	// Early, when set, is the OpenFlow server this controller takes over instead of listening (Listen and Server
	// are then not used): one serving since before the store loaded (Server.ServeEarly), whose switches have
	// connected meanwhile.
	Early *Server
	// RetryMin and RetryMax bound the backoff of a bridge whose programming failed; defaults 100ms and 10s.
	RetryMin, RetryMax time.Duration
	// FollowerPassInterval spaces the reconciliation passes of a cluster member that does not lead (it programs
	// nothing; its passes only keep its analysis warm for a takeover, which starts with a pass of its own), so
	// that a burst of mutations costs the followers one pass per interval, not one each; default 1s.
	FollowerPassInterval time.Duration
	// Workers bounds how many bridges are programmed at once; default 256 (a reconnect storm reads back every
	// bridge: each costs a round trip, and more of them in flight hide its latency).
	Workers int
	// Cluster, when set, makes this controller one of several: it programs switches (as their OpenFlow MASTER,
	// with its term as generation id) and writes OVSDB only while it leads; otherwise it is every switch's SLAVE
	// and keeps following ports and OVSDB, ready to take over. Nil: a controller that runs alone.
	Cluster Leadership
	// CounterPeriod is how often the leader reads each bridge's session counters (the reads spread over it);
	// 0: DefaultCounterPeriod; negative: never.
	CounterPeriod time.Duration
	// StateDir, when set, is a directory of this controller's own where it records what it compiled for each
	// bridge (digests, at every full pass and when it stops), so that its next run, the same program on the same
	// inputs, compiles no bridge whose switch holds those flows. Empty: every run compiles every bridge.
	StateDir string
	// FullPassEvery is how often, at the most, a pass analyses every session rather than what changed (the safety
	// net of the incremental passes); default 10 minutes.
	FullPassEvery time.Duration
}

// Leadership is what the controller asks of the controllers' cluster.
type Leadership interface {
	// Leading reports whether this controller leads (and has caught up with the log), and the term.
	Leading() (bool, uint64)
	// Subscribe signals every change of Leading.
	Subscribe() (<-chan struct{}, func())
	// OpenFlowTargets is every member's OpenFlow target: what managed bridges connect to.
	OpenFlowTargets() []string
}

// Controller turns the stored port mirrors into flows on every connected bridge, level-triggered: a change marks
// bridges dirty, and each dirty bridge is converged to exactly the flows the stored state and the live topology
// imply. It implements service.Live.
type Controller struct {
	opts Options
	svc  *service.Service
	log  *slog.Logger
	view *topology.View
	srv  *Server

	kick chan struct{} // capacity 1: a reconciliation pass is wanted
	sem  chan struct{} // bounds concurrent bridge programming

	packers sync.Pool   // *ofwire.Packer: the scratch space of packing compiled bridges, one per packing goroutine
	passing atomic.Bool // a reconciliation pass runs (Settled)

	mu              sync.Mutex
	bridges         map[string]*bridge // by datapath id
	plan            *planState         // the latest pass's analysis, for session status
	hosts           map[string]*hostManager
	runCtx          context.Context
	reloadInventory bool                // the inventory must be reloaded into the view before the next pass
	tunnels         map[string][]uint32 // datapath id -> its flow-network tunnel ports at the last pass
	tunnelsOf       *fabric             // the fabric tunnels was computed from

	metrics  *metrics
	counters *counterState
	probes   *prober
	fabric   *fabric // the last pass's bridges and flow endpoints, while nothing they derive from changed

	// While this controller leads: the term, and the context its programming runs under (cancelled the moment
	// it stops leading). Without a cluster: term 0 and the run context, for ever.
	leadTerm   uint64
	leadCtx    context.Context
	leadCancel context.CancelFunc
	targets    []string // the OpenFlow targets given to OVSDB-managed bridges

	wg sync.WaitGroup // bridge workers and host managers

	inc       *incState // the passes' session cache and indexes; the loop's goroutine only
	passStats passCounters
	onWork    func(dp string, w *work) // tests: sees every bridge's compiled state a pass hands out

	ready     chan struct{} // closed when the first full pass has completed
	readyOnce sync.Once

	// The warm start (warmstart.go), guarded by mu: the program's identity, and what its previous run recorded
	// that no pass has used yet.
	program      flowcache.Program
	programKnown bool
	restored     map[string]flowcache.Entry
	prefetchHeld bool      // the reads of the switches handed over wait for the first pass (prefetch)
	prefetchQ    []*Switch // the switches whose reads wait
}

// New opens the OpenFlow listener, or takes Options.Early over. Run starts everything else.
func New(opts Options) (*Controller, error) {
	if opts.Service == nil {
		return nil, fmt.Errorf("controller: no service")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FollowerPassInterval <= 0 {
		opts.FollowerPassInterval = time.Second
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 100 * time.Millisecond
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 10 * time.Second
	}
	if opts.Workers <= 0 {
		opts.Workers = 256
	}
	if opts.FullPassEvery <= 0 {
		opts.FullPassEvery = 10 * time.Minute
	}
	c := &Controller{
		opts:            opts,
		svc:             opts.Service,
		log:             opts.Logger,
		view:            topology.NewView(),
		kick:            make(chan struct{}, 1),
		sem:             make(chan struct{}, opts.Workers),
		bridges:         map[string]*bridge{},
		hosts:           map[string]*hostManager{},
		reloadInventory: true,
		tunnels:         map[string][]uint32{},
		metrics:         newMetrics(),
		counters:        newCounterState(),
		inc:             newIncState(),
		probes:          newProber(),
		ready:           make(chan struct{}),
	}
	if opts.Early != nil {
		if opts.Early.early == nil {
			return nil, fmt.Errorf("controller: the early server is not serving (Server.ServeEarly)")
		}
		c.srv = opts.Early
		return c, nil
	}
	cfg := opts.Server
	cfg.Addr = opts.Listen
	cfg.Handler = c
	cfg.Logger = opts.Logger
	cfg.OnPacketIn = c.probes.packetIn
	srv, err := Listen(cfg)
	if err != nil {
		return nil, err
	}
	c.srv = srv
	return c, nil
}

// Ready is closed once the controller's first full pass has completed: every stored session analysed and every
// connected bridge handed its state (the daemon logs how long its start took).
func (c *Controller) Ready() <-chan struct{} { return c.ready }

// Addr is the OpenFlow listener's address.
func (c *Controller) Addr() net.Addr { return c.srv.Addr() }

// View is the live topology view (for tests and the daemon's metrics).
func (c *Controller) View() *topology.View { return c.view }

// Run serves OpenFlow and reconciles until ctx ends, then stops every goroutine it started. Installed flows stay
// on the switches.
func (c *Controller) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	c.runCtx = ctx
	c.mu.Unlock()

	feed, unsubscribe := c.svc.Subscribe(4096)
	defer unsubscribe()
	var leadership <-chan struct{}
	if c.opts.Cluster != nil {
		ch, stop := c.opts.Cluster.Subscribe()
		defer stop()
		leadership = ch
	} else {
		c.mu.Lock()
		c.leadCtx = ctx
		c.mu.Unlock()
	}
	c.loadFlowCache()
	c.leadershipChanged(ctx)

	srvDone := make(chan error, 1)
	if c.opts.Early != nil {
		// The switches that connected while the store loaded are handed over before the first pass starts: one
		// full pass with every such bridge. (Loading the inventory before handing them over, to spare it their
		// arrival's competition, once left a restarted daemon's sessions' flows deleted and added back on real
		// OVS; most likely the OVSDB managers' removing tunnel ports before they were told their hosts' needs,
		// since fixed in ovsdbhost: not tried again.)
		c.mu.Lock()
		c.prefetchHeld = true
		c.mu.Unlock()
		caughtUp := c.srv.attach(c, c.probes.packetIn)
		go func() { srvDone <- c.srv.serveAttached(ctx) }()
		select {
		case <-caughtUp:
		case <-ctx.Done():
		case <-c.srv.early.done: // it stopped before it was taken over: serveAttached says why
		}
	} else {
		go func() { srvDone <- c.srv.Serve(ctx) }()
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.runExpiry(ctx)
	}()

	c.trigger()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.runCounters(ctx)
	}()
	err := c.loop(ctx, feed, leadership)
	cancel()
	serveErr := <-srvDone
	c.wg.Wait()
	c.saveFlowCache()
	if err == nil {
		err = serveErr
	}
	return err
}

func (c *Controller) trigger() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// loop waits for causes and runs reconciliation passes; bursts coalesce because each pass takes everything
// that accumulated.
func (c *Controller) loop(ctx context.Context, feed <-chan store.Change, leadership <-chan struct{}) error {
	var (
		lastPass     time.Time
		followerWait <-chan time.Time // armed while a follower's pass is put off
	)
	for {
		select {
		case <-followerWait:
			followerWait = nil
		case <-ctx.Done():
			return nil
		case <-leadership:
			c.leadershipChanged(ctx)
		case ch, ok := <-feed:
			if !ok {
				return fmt.Errorf("controller: the store's change feed closed")
			}
			c.noteChange(ch)
			// take whatever else is queued, so one pass serves the burst
			for drained := false; !drained; {
				select {
				case ch, ok = <-feed:
					if !ok {
						return fmt.Errorf("controller: the store's change feed closed")
					}
					c.noteChange(ch)
				default:
					drained = true
				}
			}
		case <-c.view.Changed():
		case <-c.kick:
		}
		if c.following() {
			if wait := c.opts.FollowerPassInterval - time.Since(lastPass); wait > 0 {
				if followerWait == nil {
					followerWait = time.After(wait)
				}
				continue // the causes stay recorded (dirty bridges, reloads) for the pass to come
			}
		}
		followerWait = nil
		start := time.Now()
		lastPass = start
		c.passing.Store(true)
		err := c.pass(ctx)
		c.passing.Store(false)
		c.metrics.observePass(start, err)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Error("reconciliation pass failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(c.opts.RetryMin):
				c.trigger()
			}
		}
	}
}

// Settled reports whether the controller has caught up with what it has seen: no reconciliation pass runs or is
// due, and no bridge is being programmed (or waits to retry). Tests and benchmarks wait for it between steps, once
// they have seen the controller take the step's change (a change it has not yet heard of does not unsettle it).
func (c *Controller) Settled() bool {
	if c.passing.Load() || len(c.kick) > 0 {
		return false
	}
	c.mu.Lock()
	bs := slices.Collect(maps.Values(c.bridges))
	c.mu.Unlock()
	for _, b := range bs {
		b.mu.Lock()
		running := b.running
		b.mu.Unlock()
		if running {
			return false
		}
	}
	return true
}

// following says whether this controller is a cluster member that does not lead.
func (c *Controller) following() bool {
	if c.opts.Cluster == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leadCtx == nil
}

// noteChange records what a store change means for the next pass.
func (c *Controller) noteChange(ch store.Change) {
	c.inc.noteChange(ch)
	switch ch.Kind {
	case store.KindAll:
		c.mu.Lock()
		c.reloadInventory = true
		c.fabric = nil
		c.mu.Unlock()
	case store.KindHost:
		// a host's datapath locates its flow endpoints
		c.inc.pendHosts[ch.UUID] = struct{}{}
		c.mu.Lock()
		c.fabric = nil
		c.mu.Unlock()
	case store.KindVmInstance:
		c.inc.pendVMs[ch.UUID] = struct{}{}
	case store.KindVmNic:
		c.inc.pendNics[ch.UUID] = struct{}{}
	case store.KindFlowNetwork, store.KindFlowEndpoint:
		c.mu.Lock()
		c.fabric = nil
		c.mu.Unlock()
	case store.KindMeta:
		c.updateTargets()
	}
}

// SwitchConnected implements Handler.
func (c *Controller) SwitchConnected(sw *Switch) {
	c.log.Info("switch connected", "datapath", sw.DatapathID(), "remote", sw.RemoteAddr())
	c.mu.Lock()
	b := c.bridgeLocked(sw.DatapathID())
	b.mu.Lock()
	b.sw = sw
	b.installed = packedFlows{} // unknown until read back
	b.known = false
	b.confirmed = nil
	b.mu.Unlock()
	c.mu.Unlock()
	c.view.SwitchConnected(sw.DatapathID(), sw.RemoteAddr(), sw.ConnectedAt(), sw.Ports())
	c.view.MarkDirty(sw.DatapathID())
	c.refreshHostOf(sw.DatapathID())
	if c.opts.Cluster != nil {
		if leading, term := c.opts.Cluster.Leading(); !leading {
			c.demote(sw, term)
		}
	}
	c.prefetch(sw)
}

// SwitchDisconnected implements Handler.
func (c *Controller) SwitchDisconnected(sw *Switch) {
	c.log.Info("switch disconnected", "datapath", sw.DatapathID(), "remote", sw.RemoteAddr(), "err", sw.Err())
	c.mu.Lock()
	if b := c.bridges[sw.DatapathID()]; b != nil {
		b.mu.Lock()
		if b.sw == sw {
			b.sw = nil
			b.known = false
			b.installed = packedFlows{}
			b.confirmed = nil
		}
		b.mu.Unlock()
	}
	c.mu.Unlock()
	if c.srv.Switch(sw.DatapathID()) == nil {
		c.view.SwitchDisconnected(sw.DatapathID())
		c.forgetUnclaimed(sw.DatapathID())
	}
}

// PortStatus implements Handler.
func (c *Controller) PortStatus(sw *Switch, reason PortReason, port model.SwitchPort) {
	c.view.PortStatus(sw.DatapathID(), port, reason == PortDeleted)
	c.refreshHostOf(sw.DatapathID())
}
