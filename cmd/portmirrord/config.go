package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"portmirror/cluster"
	"portmirror/graphql"
	"portmirror/internal/memlimit"
)

// Config is everything the daemon reads from its flags and its config file.
type Config struct {
	DataDir           string        `yaml:"data_dir"`
	APIListen         string        `yaml:"api_listen"`
	OpenFlowListen    string        `yaml:"openflow_listen"`
	OpenFlowAdvertise string        `yaml:"openflow_advertise"`
	LogLevel          string        `yaml:"log_level"`
	LogFormat         string        `yaml:"log_format"`
	Tokens            []TokenConfig `yaml:"tokens"`

	// Several controllers, one leader (API.md): empty NodeID runs a single controller.
	NodeID       string `yaml:"node_id"`
	RaftListen   string `yaml:"raft_listen"`
	Peers        string `yaml:"peers"`
	APIAdvertise string `yaml:"api_advertise"`

	// Transport security (API.md "Transport security"): PEM files.
	OpenFlowTLSCert string `yaml:"openflow_tls_cert"`
	OpenFlowTLSKey  string `yaml:"openflow_tls_key"`
	OpenFlowTLSCA   string `yaml:"openflow_tls_ca"`
	APITLSCert      string `yaml:"api_tls_cert"`
	APITLSKey       string `yaml:"api_tls_key"`
	APITLSClientCA  string `yaml:"api_tls_client_ca"`
	ClusterTLSCert  string `yaml:"cluster_tls_cert"`
	ClusterTLSKey   string `yaml:"cluster_tls_key"`
	ClusterTLSCA    string `yaml:"cluster_tls_ca"`

	// Limits of what listens (README "Hardening").
	OpenFlowMaxConnsPerAddr int  `yaml:"openflow_max_conns_per_addr"`
	APIMaxConnsPerAddr      int  `yaml:"api_max_conns_per_addr"`
	APIMaxRequests          int  `yaml:"api_max_requests"`
	MetricsRequireToken     bool `yaml:"metrics_require_token"`

	// CounterPeriod is how often the leader reads each bridge's session counters; 0: the controller's default.
	CounterPeriod time.Duration `yaml:"counter_period"`

	// MemoryLimit is the Go runtime's soft memory limit: auto, none or a size (internal/memlimit).
	MemoryLimit string `yaml:"memory_limit"`

	// TLS is what the files above hold, read by parseConfig (see TLSConfigs).
	TLS TLSConfigs `yaml:"-"`

	// ConfigFile is the file the rest was read from ("" for none); WorldReadable is set when that file, which
	// holds tokens, can be read by every user of the machine.
	ConfigFile    string `yaml:"-"`
	WorldReadable bool   `yaml:"-"`
}

// TokenConfig is one API token of the config file: the token itself, or its SHA-256 in hex.
type TokenConfig struct {
	Name   string `yaml:"name"`
	Token  string `yaml:"token"`
	SHA256 string `yaml:"sha256"`
	Role   string `yaml:"role"`
}

// defaults are the embedded defaults of API.md.
func defaults() Config {
	return Config{
		DataDir:        "./data",
		APIListen:      "127.0.0.1:8080",
		OpenFlowListen: ":6653",
		LogLevel:       "info",
		LogFormat:      "text",
		MemoryLimit:    "auto",

		OpenFlowMaxConnsPerAddr: DefaultOpenFlowMaxConnsPerAddr,
		APIMaxConnsPerAddr:      DefaultAPIMaxConnsPerAddr,
		APIMaxRequests:          DefaultAPIMaxRequests,
	}
}

// Default limits; README "Hardening" says why each is what it is.
const (
	DefaultOpenFlowMaxConnsPerAddr = 32
	DefaultAPIMaxConnsPerAddr      = 64
	DefaultAPIMaxRequests          = 128
)

// errUsage is a command line or config file the daemon cannot run with (exit status 2).
type errUsage struct{ err error }

func (e errUsage) Error() string { return e.err.Error() }
func (e errUsage) Unwrap() error { return e.err }

// parseConfig reads the flags and the config file they name. A flag given on the command line wins over the
// file; the file wins over the defaults. flag.ErrHelp is returned for -h.
func parseConfig(args []string, usageOut io.Writer) (Config, error) {
	cfg := defaults()
	fs := flag.NewFlagSet("portmirrord", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	var flags Config
	fs.StringVar(&flags.DataDir, "data-dir", cfg.DataDir, "the Badger `directory`; created on first start")
	fs.StringVar(&flags.APIListen, "api-listen", cfg.APIListen, "`address` of GraphQL (/graphql), /healthz and /metrics")
	fs.StringVar(&flags.OpenFlowListen, "openflow-listen", cfg.OpenFlowListen, "`address` where OVS bridges connect")
	fs.StringVar(&flags.OpenFlowAdvertise, "openflow-advertise", cfg.OpenFlowAdvertise,
		"controller `target` set on bridges managed through OVSDB, e.g. tcp:192.0.2.1:6653; empty leaves their setting as it is")
	fs.StringVar(&flags.NodeID, "node-id", cfg.NodeID, "this controller's `id` in a cluster of controllers; empty runs a single controller")
	fs.StringVar(&flags.RaftListen, "raft-listen", cfg.RaftListen, "`address` where the other controllers reach this one for replication, e.g. 192.0.2.1:7000")
	fs.StringVar(&flags.Peers, "peers", cfg.Peers, "the founding members, `ID=ADDR,...` (ADDR: each one's --raft-listen), the same list on each")
	fs.StringVar(&flags.APIAdvertise, "api-advertise", cfg.APIAdvertise, "`URL` of this controller's API for the others (default: from --api-listen)")
	fs.StringVar(&flags.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.StringVar(&flags.LogFormat, "log-format", cfg.LogFormat, "text or json (to stderr)")
	fs.StringVar(&flags.OpenFlowTLSCert, "openflow-tls-cert", "", "PEM `file`: the controller's certificate for OpenFlow over TLS (with --openflow-tls-key and --openflow-tls-ca; plain TCP is then refused)")
	fs.StringVar(&flags.OpenFlowTLSKey, "openflow-tls-key", "", "PEM `file`: the private key of --openflow-tls-cert")
	fs.StringVar(&flags.OpenFlowTLSCA, "openflow-tls-ca", "", "PEM `file`: the CA whose signature a switch's certificate must carry (also checks ssl: OVSDB servers)")
	fs.StringVar(&flags.APITLSCert, "api-tls-cert", "", "PEM `file`: serve the API over HTTPS (TLS 1.2 or later, HTTP/2) with this certificate")
	fs.StringVar(&flags.APITLSKey, "api-tls-key", "", "PEM `file`: the private key of --api-tls-cert")
	fs.StringVar(&flags.APITLSClientCA, "api-tls-client-ca", "", "PEM `file`: also require API clients to present a certificate this CA signed")
	fs.StringVar(&flags.ClusterTLSCert, "cluster-tls-cert", "", "PEM `file`: this controller's certificate for replication and forwarding between controllers (mutual TLS)")
	fs.StringVar(&flags.ClusterTLSKey, "cluster-tls-key", "", "PEM `file`: the private key of --cluster-tls-cert")
	fs.StringVar(&flags.ClusterTLSCA, "cluster-tls-ca", "", "PEM `file`: the CA that signs every controller's --cluster-tls-cert")
	fs.IntVar(&flags.OpenFlowMaxConnsPerAddr, "openflow-max-conns-per-addr", cfg.OpenFlowMaxConnsPerAddr, "open OpenFlow connections allowed from one IP address; 0: no bound")
	fs.IntVar(&flags.APIMaxConnsPerAddr, "api-max-conns-per-addr", cfg.APIMaxConnsPerAddr, "open API connections allowed from one IP address; 0: no bound")
	fs.IntVar(&flags.APIMaxRequests, "api-max-requests", cfg.APIMaxRequests, "API requests served at once; more are answered 503 at once; 0: no bound")
	fs.BoolVar(&flags.MetricsRequireToken, "metrics-require-token", false, "GET /metrics needs a token (any role), as the API does")
	fs.DurationVar(&flags.CounterPeriod, "counter-period", cfg.CounterPeriod, "how often each bridge's session counters are read (at least 100ms; 0: 10s), the reads spread over it")
	fs.StringVar(&flags.MemoryLimit, "memory-limit", cfg.MemoryLimit, "soft memory `limit` the collector keeps the process under: a size (e.g. 2GiB, 1900MiB), none, or auto: "+
		"GOMEMLIMIT when set, else 90% of the cgroup's memory.max or memory.high, else none (README \"At scale\")")
	configFile := fs.String("config", "", "YAML `file` with tokens and any of the other settings (each flag's name with _ for -, e.g. data_dir, api_tls_cert; and tokens)")
	fs.Usage = func() {
		fmt.Fprintf(usageOut, "Usage: portmirrord [flags]\n\nThe port mirroring controller: GraphQL API, OpenFlow 1.3 controller.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, errUsage{err}
	}
	if fs.NArg() > 0 {
		return Config{}, errUsage{fmt.Errorf("unexpected arguments %q: portmirrord takes flags only", fs.Args())}
	}

	if *configFile != "" {
		if err := readConfigFile(*configFile, &cfg); err != nil {
			return Config{}, errUsage{err}
		}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data-dir":
			cfg.DataDir = flags.DataDir
		case "api-listen":
			cfg.APIListen = flags.APIListen
		case "openflow-listen":
			cfg.OpenFlowListen = flags.OpenFlowListen
		case "openflow-advertise":
			cfg.OpenFlowAdvertise = flags.OpenFlowAdvertise
		case "node-id":
			cfg.NodeID = flags.NodeID
		case "raft-listen":
			cfg.RaftListen = flags.RaftListen
		case "peers":
			cfg.Peers = flags.Peers
		case "api-advertise":
			cfg.APIAdvertise = flags.APIAdvertise
		case "log-level":
			cfg.LogLevel = flags.LogLevel
		case "log-format":
			cfg.LogFormat = flags.LogFormat
		case "openflow-tls-cert":
			cfg.OpenFlowTLSCert = flags.OpenFlowTLSCert
		case "openflow-tls-key":
			cfg.OpenFlowTLSKey = flags.OpenFlowTLSKey
		case "openflow-tls-ca":
			cfg.OpenFlowTLSCA = flags.OpenFlowTLSCA
		case "api-tls-cert":
			cfg.APITLSCert = flags.APITLSCert
		case "api-tls-key":
			cfg.APITLSKey = flags.APITLSKey
		case "api-tls-client-ca":
			cfg.APITLSClientCA = flags.APITLSClientCA
		case "cluster-tls-cert":
			cfg.ClusterTLSCert = flags.ClusterTLSCert
		case "cluster-tls-key":
			cfg.ClusterTLSKey = flags.ClusterTLSKey
		case "cluster-tls-ca":
			cfg.ClusterTLSCA = flags.ClusterTLSCA
		case "openflow-max-conns-per-addr":
			cfg.OpenFlowMaxConnsPerAddr = flags.OpenFlowMaxConnsPerAddr
		case "api-max-conns-per-addr":
			cfg.APIMaxConnsPerAddr = flags.APIMaxConnsPerAddr
		case "api-max-requests":
			cfg.APIMaxRequests = flags.APIMaxRequests
		case "metrics-require-token":
			cfg.MetricsRequireToken = flags.MetricsRequireToken
		case "counter-period":
			cfg.CounterPeriod = flags.CounterPeriod
		case "memory-limit":
			cfg.MemoryLimit = flags.MemoryLimit
		}
	})
	if err := cfg.validate(); err != nil {
		return Config{}, errUsage{err}
	}
	tlsConfigs, err := cfg.loadTLS()
	if err != nil {
		return Config{}, errUsage{err}
	}
	cfg.TLS = tlsConfigs
	return cfg, nil
}

func readConfigFile(path string, cfg *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	cfg.ConfigFile = path
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o004 != 0 && len(cfg.Tokens) > 0 {
		cfg.WorldReadable = true
	}
	return nil
}

func (c *Config) validate() error {
	fileNote := ""
	if c.ConfigFile != "" {
		fileNote = " (config file " + c.ConfigFile + ")"
	}
	bad := func(flagName, key, format string, a ...any) error {
		return fmt.Errorf("flag --%s / key %s%s: %s", flagName, key, fileNote, fmt.Sprintf(format, a...))
	}
	if strings.TrimSpace(c.DataDir) == "" {
		return bad("data-dir", "data_dir", "the data directory is empty")
	}
	if _, _, err := net.SplitHostPort(c.APIListen); err != nil {
		return bad("api-listen", "api_listen", "%q is not HOST:PORT: %v", c.APIListen, err)
	}
	if _, _, err := net.SplitHostPort(c.OpenFlowListen); err != nil {
		return bad("openflow-listen", "openflow_listen", "%q is not HOST:PORT: %v", c.OpenFlowListen, err)
	}
	if c.OpenFlowAdvertise != "" && (c.OpenFlowTLSCert != "") != strings.HasPrefix(c.OpenFlowAdvertise, "ssl:") {
		if c.OpenFlowTLSCert != "" {
			return bad("openflow-advertise", "openflow_advertise", "%q: with --openflow-tls-cert the listener speaks TLS only, so bridges must be told ssl:HOST:PORT", c.OpenFlowAdvertise)
		}
		return bad("openflow-advertise", "openflow_advertise", "%q: an ssl: target needs --openflow-tls-cert, --openflow-tls-key and --openflow-tls-ca", c.OpenFlowAdvertise)
	}
	if c.OpenFlowAdvertise != "" {
		proto, addr, ok := strings.Cut(c.OpenFlowAdvertise, ":")
		host, port, err := net.SplitHostPort(addr)
		if !ok || (proto != "tcp" && proto != "ssl") || err != nil || host == "" || port == "" {
			return bad("openflow-advertise", "openflow_advertise", "%q is not an OVS controller target like tcp:192.0.2.1:6653", c.OpenFlowAdvertise)
		}
	}
	for _, l := range []struct {
		flag, key string
		v         int
	}{
		{"openflow-max-conns-per-addr", "openflow_max_conns_per_addr", c.OpenFlowMaxConnsPerAddr},
		{"api-max-conns-per-addr", "api_max_conns_per_addr", c.APIMaxConnsPerAddr},
		{"api-max-requests", "api_max_requests", c.APIMaxRequests},
	} {
		if l.v < 0 {
			return bad(l.flag, l.key, "%d is negative; 0 means no bound", l.v)
		}
	}
	if _, err := memlimit.Parse(c.MemoryLimit); err != nil {
		return bad("memory-limit", "memory_limit", "%v", err)
	}
	if c.CounterPeriod != 0 && c.CounterPeriod < 100*time.Millisecond {
		return bad("counter-period", "counter_period", "%v is below 100ms", c.CounterPeriod)
	}
	if c.NodeID != "" || c.RaftListen != "" || c.Peers != "" {
		if err := cluster.ValidateNodeID(c.NodeID); err != nil {
			return bad("node-id", "node_id", "%v (--raft-listen and --peers need it)", err)
		}
		if _, _, err := net.SplitHostPort(c.RaftListen); err != nil {
			return bad("raft-listen", "raft_listen", "%q is not HOST:PORT: %v", c.RaftListen, err)
		}
		if _, err := cluster.ParsePeers(c.Peers); err != nil {
			return bad("peers", "peers", "%v", err)
		}
	}
	if c.APIAdvertise != "" {
		u, err := url.Parse(c.APIAdvertise)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("api-advertise", "api_advertise", "%q is not a URL like http://192.0.2.1:8080", c.APIAdvertise)
		}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return bad("log-level", "log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return bad("log-format", "log_format", "%q is not text or json", c.LogFormat)
	}
	if err := graphql.ValidateTokens(c.apiTokens()); err != nil {
		return fmt.Errorf("key tokens%s: %w", fileNote, err)
	}
	return nil
}

// apiAdvertise is the API URL the other controllers forward to: --api-advertise, or one made of --api-listen
// (whose unspecified host becomes the --raft-listen host; https when the API serves TLS).
func (c *Config) apiAdvertise(listen net.Addr) string {
	if c.APIAdvertise != "" {
		return strings.TrimRight(c.APIAdvertise, "/")
	}
	host, port, _ := net.SplitHostPort(listen.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host, _, _ = net.SplitHostPort(c.RaftListen)
	}
	scheme := "http://"
	if c.APITLSCert != "" {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, port)
}

func (c *Config) apiTokens() []graphql.Token {
	out := make([]graphql.Token, 0, len(c.Tokens))
	for _, t := range c.Tokens {
		out = append(out, graphql.Token{Name: t.Name, Secret: t.Token, SHA256: t.SHA256, Role: graphql.Role(t.Role)})
	}
	return out
}

// logLevel is the parsed --log-level (validate checked it).
func (c *Config) logLevel() slog.Level {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	return lvl
}

// logger logs at level, which starts at --log-level and a reload may change.
func (c *Config) logger(w io.Writer, level *slog.LevelVar) *slog.Logger {
	level.Set(c.logLevel())
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
