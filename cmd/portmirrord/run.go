package main

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"portmirror/cluster"
	"portmirror/controller"
	"portmirror/graphql"
	"portmirror/internal/memlimit"
	"portmirror/internal/netlimit"
	"portmirror/internal/secaudit"
	"portmirror/service"
	"portmirror/store"
	"portmirror/web"
)

// shutdownGrace bounds how long a stop waits for the API requests in flight.
const shutdownGrace = 15 * time.Second

// The API server's timeouts (README "Hardening" says why each is what it is).
const (
	apiReadHeaderTimeout = 10 * time.Second
	apiReadTimeout       = 30 * time.Second
	apiWriteTimeout      = 60 * time.Second
	apiIdleTimeout       = 2 * time.Minute
	apiMaxHeaderBytes    = 64 << 10
)

// httpErrorLog is the API server's error log: a failed TLS handshake is a refusal for the auditor, anything
// else a warning.
func httpErrorLog(log *slog.Logger, audit *secaudit.Auditor) *stdlog.Logger {
	return stdlog.New(writerFunc(func(p []byte) (int, error) {
		line := strings.TrimSpace(string(p))
		if rest, ok := strings.CutPrefix(line, "http: TLS handshake error from "); ok {
			remote, reason, _ := strings.Cut(rest, ": ")
			audit.Refused("api", secaudit.Certificate, remote, "TLS handshake: "+reason)
			return len(p), nil
		}
		log.Warn(line)
		return len(p), nil
	}), "", 0)
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// run wires the daemon and serves until ctx is done: store → service → (OpenFlow controller) → HTTP API. On
// return the API has stopped accepting requests, the requests in flight have finished (within shutdownGrace),
// and the store is closed, so every acknowledged mutation is on disk.
func run(ctx context.Context, cfg Config, log *slog.Logger, rl reloader) (err error) {
	log.Info("portmirrord starting", "data_dir", cfg.DataDir, "api_listen", cfg.APIListen,
		"openflow_listen", cfg.OpenFlowListen, "openflow_advertise", cfg.OpenFlowAdvertise, "tokens", len(cfg.Tokens))
	if cfg.WorldReadable {
		log.Warn("the config file holds API tokens and every user of this machine can read it: chmod 600 it",
			"config", cfg.ConfigFile)
	}
	if len(cfg.Tokens) == 0 {
		log.Warn("no API token configured: the API serves loopback clients only, as the actor \"local\"")
	}
	if err := applyMemoryLimit(cfg.MemoryLimit, log); err != nil {
		return err
	}

	// Every refusal at a door (bad token, bad certificate, over a bound) is counted and logged at a bounded rate.
	registry := prometheus.NewRegistry()
	audit, err := secaudit.New(log.With("component", "security"), registry)
	if err != nil {
		return fmt.Errorf("registering the refusal metric: %w", err)
	}

	// The OpenFlow server serves before the store loads: the bridges connect, handshake and are kept alive
	// meanwhile (a fleet of 10,000 would otherwise redial for the seconds the load takes), and the controller
	// takes it over. It stops with the controller, or here if the daemon stops before one started.
	ofLog := log.With("component", "controller")
	ofSrv, err := controller.Listen(controller.Config{Addr: cfg.OpenFlowListen, Logger: ofLog,
		TLS: cfg.TLS.OpenFlow, MaxConnsPerAddr: cfg.OpenFlowMaxConnsPerAddr,
		OnRefused: func(remote string, reason error) {
			kind := secaudit.Certificate
			if errors.Is(reason, controller.ErrTooManyConns) {
				kind = secaudit.ConnsPerAddr
			}
			audit.Refused("openflow", kind, remote, reason.Error())
		}})
	if err != nil {
		return fmt.Errorf("OpenFlow listener (--openflow-listen): %w", err)
	}
	ofSrv.ServeEarly(context.WithoutCancel(ctx))
	defer ofSrv.Close()
	log.Info("OpenFlow listener up", "addr", ofSrv.Addr().String(), "tls", cfg.TLS.OpenFlow != nil)

	st, err := store.Open(ctx, store.Options{Dir: cfg.DataDir, Logger: log.With("component", "store"),
		// a member of a cluster has its Raft log, fsynced, as the durable record of every write
		NoSync: cfg.NodeID != ""})
	if err != nil {
		return fmt.Errorf("opening the store in %s: %w", cfg.DataDir, err)
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the store: %w", cerr))
			return
		}
		log.Info("store closed", "data_dir", cfg.DataDir)
	}()

	svc := service.New(st, service.Options{Logger: log.With("component", "service")})

	// The API's listener comes first: a cluster member publishes its address.
	rawLn, err := net.Listen("tcp", cfg.APIListen)
	if err != nil {
		return fmt.Errorf("API listener (--api-listen): %w", err)
	}
	defer rawLn.Close()
	ln := netlimit.PerAddr(rawLn, cfg.APIMaxConnsPerAddr, func(remote string) {
		audit.Refused("api", secaudit.ConnsPerAddr, remote, fmt.Sprintf("%d connections from this address are open already (--api-max-conns-per-addr)", cfg.APIMaxConnsPerAddr))
	})

	// With --node-id, this controller is a member of a cluster: every write goes through the Raft log.
	var node *cluster.Node
	if cfg.NodeID != "" {
		peers, _ := cluster.ParsePeers(cfg.Peers) // validated with the flags
		node, err = cluster.Open(ctx, cluster.Options{
			NodeID: cfg.NodeID, RaftListen: cfg.RaftListen, Peers: peers, Dir: filepath.Join(cfg.DataDir, "raft"),
			Store: st, Logger: log.With("component", "cluster"),
			APIAdvertise: cfg.apiAdvertise(ln.Addr()), OpenFlowAdvertise: cfg.OpenFlowAdvertise,
			TLS: clusterTLS(cfg.TLS.Cluster),
		})
		if err != nil {
			return fmt.Errorf("joining the cluster (--node-id, --raft-listen, --peers): %w", err)
		}
		st.SetReplicator(node)
		svc.SetMembership(node)
		nodeCtx, stopNode := context.WithCancel(context.WithoutCancel(ctx))
		nodeDone := make(chan struct{})
		go func() {
			defer close(nodeDone)
			_ = node.Run(nodeCtx)
		}()
		// Raft stops after the controller (deferred before it, so it runs after) and before the store closes.
		defer func() {
			stopNode()
			<-nodeDone
			if cerr := node.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("stopping Raft: %w", cerr))
			}
			log.Info("left the cluster's Raft (still a member)", "node", cfg.NodeID)
		}()
		log.Info("cluster member", "node", cfg.NodeID, "raft", node.RaftAddress(), "api_advertise", cfg.apiAdvertise(ln.Addr()))
	}

	// The OpenFlow controller: it takes the server over, serves on a goroutine owned here, and stops after the
	// API has drained and before the store closes. Installed flows stay on the switches when it stops.
	copts := controller.Options{
		Service:       svc,
		Logger:        ofLog,
		Early:         ofSrv,
		Advertise:     cfg.OpenFlowAdvertise,
		OVSDBTLS:      cfg.TLS.OVSDB,
		CounterPeriod: cfg.CounterPeriod,
		// what it compiled per bridge, by digest: a restart of this binary compiles no bridge that holds it
		StateDir: filepath.Join(cfg.DataDir, "controller"),
	}
	if node != nil {
		copts.Cluster = node
	}

	ctrl, err := controller.New(copts)
	if err != nil {
		return fmt.Errorf("OpenFlow controller: %w", err)
	}
	svc.SetLive(ctrl)
	ctrlCtx, stopCtrl := context.WithCancel(context.WithoutCancel(ctx))
	var ctrlErr error
	ctrlDone := make(chan struct{}) // closed once Run returned; ctrlErr is set before
	go func() {
		defer close(ctrlDone)
		ctrlErr = ctrl.Run(ctrlCtx)
	}()
	defer func() {
		stopCtrl()
		<-ctrlDone
		if ctrlErr != nil {
			err = errors.Join(err, fmt.Errorf("controller: %w", ctrlErr))
		}
		log.Info("controller stopped")
	}()
	go func() { // ends with the controller at the latest
		start := time.Now()
		select {
		case <-ctrl.Ready():
			log.Info("controller ready: its first full pass is done", "seconds", time.Since(start).Seconds())
		case <-ctrlDone:
		}
	}()
	openflowHealth := func(context.Context) error {
		select {
		case <-ctrlDone:
			return fmt.Errorf("the OpenFlow controller stopped: %v", ctrlErr)
		default:
			return nil
		}
	}

	console, err := web.New()
	if err != nil {
		return err
	}
	gopts := graphql.Options{
		Backend:       svc,
		Console:       console,
		ConsolePrefix: web.Prefix,
		Tokens:        cfg.apiTokens(),
		Logger:        log.With("component", "api"),
		Registry:      registry,
		MetricsAuth:   cfg.MetricsRequireToken,
		OnAuthFailure: func(remote, reason string) {
			audit.Refused("api", secaudit.Authentication, remote, reason)
		},
		Health: []graphql.HealthCheck{
			{Name: "store", Check: func(ctx context.Context) error {
				_, err := st.Audits(ctx, store.AuditQuery{First: 1})
				return err
			}},
			{Name: "openflow", Check: openflowHealth},
		},
	}
	if node != nil {
		gopts.Cluster = node
		gopts.HealthDetail = node.Health
		gopts.Health = append(gopts.Health, graphql.HealthCheck{Name: "cluster", Check: node.HealthCheck})
		gopts.Extra = map[string]http.Handler{"/cluster/": node}
	}
	api, err := graphql.New(gopts)
	if err != nil {
		return err
	}
	if err := api.Registry().Register(ctrl.Collector()); err != nil {
		return fmt.Errorf("registering the controller's metrics: %w", err)
	}
	if node != nil {
		if err := api.Registry().Register(node.Collector()); err != nil {
			return fmt.Errorf("registering the cluster's metrics: %w", err)
		}
	}
	handler := netlimit.Concurrency(api, cfg.APIMaxRequests, []string{"/healthz", "/metrics"}, func(r *http.Request) {
		audit.Refused("api", secaudit.Requests, r.RemoteAddr, fmt.Sprintf("%d requests in progress (--api-max-requests)", cfg.APIMaxRequests))
	})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: apiReadHeaderTimeout,
		ReadTimeout:       apiReadTimeout,
		WriteTimeout:      apiWriteTimeout,
		IdleTimeout:       apiIdleTimeout,
		MaxHeaderBytes:    apiMaxHeaderBytes,
		ErrorLog:          httpErrorLog(log.With("component", "http"), audit),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	served := make(chan error, 1)
	scheme := "http"
	if cfg.TLS.API != nil {
		// HTTPS, TLS 1.2 or later; ServeTLS offers HTTP/2 (ALPN h2) beside HTTP/1.1.
		scheme = "https"
		srv.TLSConfig = cfg.TLS.API
		go func() { served <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { served <- srv.Serve(ln) }()
	}
	log.Info("portmirrord ready", "api", scheme+"://"+ln.Addr().String()+"/graphql", "console", scheme+"://"+ln.Addr().String()+"/",
		"api_addr", ln.Addr().String(), "client_certificates", cfg.APITLSClientCA != "")

	reloadCtx, stopReload := context.WithCancel(ctx)
	reloadDone := make(chan struct{})
	go func() {
		defer close(reloadDone)
		rl.watch(reloadCtx, reloadable{cfg: cfg, log: log, level: rl.level, setTokens: func(t []TokenConfig) error {
			c := Config{Tokens: t}
			return api.SetTokens(c.apiTokens())
		}})
	}()
	defer func() {
		stopReload()
		<-reloadDone
	}()

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("stopping: draining API requests", "grace", shutdownGrace)
	case serveErr = <-served:
		serveErr = fmt.Errorf("API server: %w", serveErr)
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("API requests still running after the grace period; closing their connections", "error", err)
		_ = srv.Close()
	}
	if serveErr == nil {
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr = fmt.Errorf("API server: %w", err)
		}
	}
	// The controller stops next (deferred), after the API and before the store closes.
	return serveErr
}

// clusterTLS is the cluster's mutual TLS from --cluster-tls-*, or nil.
func clusterTLS(t *ClusterTLS) *cluster.TLS {
	if t == nil {
		return nil
	}
	return &cluster.TLS{Server: t.Server, Client: t.Client}
}

// applyMemoryLimit sets the Go runtime's soft memory limit as the setting says (internal/memlimit) and logs it.
func applyMemoryLimit(setting string, log *slog.Logger) error {
	set, err := memlimit.Parse(setting)
	if err != nil {
		return fmt.Errorf("memory limit: %w", err)
	}
	limit, why, err := memlimit.Resolve(set, os.Getenv, "/sys/fs/cgroup", "/proc/self")
	if err != nil {
		return fmt.Errorf("memory limit: %w", err)
	}
	switch {
	case limit > 0:
		debug.SetMemoryLimit(limit)
	case limit == 0:
		debug.SetMemoryLimit(math.MaxInt64) // none (a reload may take a limit away)
	}
	if cur := debug.SetMemoryLimit(-1); cur != math.MaxInt64 {
		log.Info("soft memory limit", "mib", cur>>20, "from", why)
	} else {
		log.Info("no soft memory limit: the heap may grow to twice what is live (GOGC)", "why", why)
	}
	return nil
}
