package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// reloader re-reads the configuration on SIGHUP.
type reloader struct {
	reread func() (Config, error) // the command line and its config file, parsed again
	level  *slog.LevelVar
}

// reloadable is what a reload changes in the running daemon.
type reloadable struct {
	cfg       Config
	log       *slog.Logger
	level     *slog.LevelVar
	setTokens func([]TokenConfig) error
}

// watch reloads on every SIGHUP until ctx is done; it returns once it has stopped listening for the signal.
func (r reloader) watch(ctx context.Context, target reloadable) {
	if r.reread == nil {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.reload(&target)
		}
	}
}

// reload re-reads the config file and every TLS file. The tokens and the log level change at once; the
// certificates and CAs apply to every handshake from now on, while open connections (the switches') stay. A
// config that does not parse, or a TLS file that does not load, changes nothing. Settings that only a restart
// can apply (addresses, the data directory, limits, which TLS files) are named in a warning.
func (r reloader) reload(t *reloadable) {
	log := t.log
	next, err := r.reread()
	if err != nil {
		log.Error("SIGHUP: the configuration was not reloaded; the running one stays", "error", err)
		return
	}
	if err := t.cfg.TLS.Reload(); err != nil {
		log.Error("SIGHUP: the TLS files were not reloaded; the running certificates stay", "error", err)
		return
	}
	if err := t.setTokens(next.Tokens); err != nil {
		log.Error("SIGHUP: the tokens were not reloaded", "error", err)
		return
	}
	t.level.Set(next.logLevel())
	if next.MemoryLimit != t.cfg.MemoryLimit {
		if err := applyMemoryLimit(next.MemoryLimit, log); err != nil {
			log.Error("SIGHUP: the memory limit was not changed", "error", err)
		} else {
			t.cfg.MemoryLimit = next.MemoryLimit
		}
	}
	if next.WorldReadable {
		log.Warn("the config file holds API tokens and every user of this machine can read it: chmod 600 it", "config", next.ConfigFile)
	}
	if changed := restartOnly(t.cfg, next); len(changed) > 0 {
		log.Warn("SIGHUP: these settings changed and apply at the next restart only", "settings", strings.Join(changed, ","))
	}
	t.cfg.Tokens, t.cfg.LogLevel = next.Tokens, next.LogLevel
	log.Info("SIGHUP: configuration reloaded", "config", next.ConfigFile, "tokens", len(next.Tokens), "log_level", next.LogLevel)
}

// restartOnly names the settings that differ between a and b and that a reload does not apply.
func restartOnly(a, b Config) []string {
	var out []string
	for _, f := range []struct {
		name string
		a, b any
	}{
		{"data_dir", a.DataDir, b.DataDir},
		{"api_listen", a.APIListen, b.APIListen},
		{"openflow_listen", a.OpenFlowListen, b.OpenFlowListen},
		{"openflow_advertise", a.OpenFlowAdvertise, b.OpenFlowAdvertise},
		{"log_format", a.LogFormat, b.LogFormat},
		{"tls files", []string{a.OpenFlowTLSCert, a.OpenFlowTLSKey, a.OpenFlowTLSCA, a.APITLSCert, a.APITLSKey, a.APITLSClientCA, a.ClusterTLSCert, a.ClusterTLSKey, a.ClusterTLSCA},
			[]string{b.OpenFlowTLSCert, b.OpenFlowTLSKey, b.OpenFlowTLSCA, b.APITLSCert, b.APITLSKey, b.APITLSClientCA, b.ClusterTLSCert, b.ClusterTLSKey, b.ClusterTLSCA}},
		{"openflow_max_conns_per_addr", a.OpenFlowMaxConnsPerAddr, b.OpenFlowMaxConnsPerAddr},
		{"api_max_conns_per_addr", a.APIMaxConnsPerAddr, b.APIMaxConnsPerAddr},
		{"api_max_requests", a.APIMaxRequests, b.APIMaxRequests},
		{"metrics_require_token", a.MetricsRequireToken, b.MetricsRequireToken},
	} {
		if as, ok := f.a.([]string); ok {
			if !slices.Equal(as, f.b.([]string)) {
				out = append(out, f.name)
			}
			continue
		}
		if f.a != f.b {
			out = append(out, f.name)
		}
	}
	return out
}
