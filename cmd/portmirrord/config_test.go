package main

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "portmirrord.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, `
data_dir: /var/lib/pm
api_listen: 0.0.0.0:9000
openflow_listen: 127.0.0.1:6653
log_level: debug
api_max_requests: 10
openflow_max_conns_per_addr: 8
memory_limit: 2GiB
tokens:
  - {name: ops, token: 0123456789abcdef0123, role: admin}
`)
	cfg, err := parseConfig([]string{"--config", file, "--api-listen", "127.0.0.1:9100", "--data-dir=/tmp/x", "--openflow-max-conns-per-addr", "0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{DataDir: "/tmp/x", APIListen: "127.0.0.1:9100", OpenFlowListen: "127.0.0.1:6653", LogLevel: "debug",
		LogFormat: "text", ConfigFile: file, APIMaxRequests: 10, APIMaxConnsPerAddr: DefaultAPIMaxConnsPerAddr, MemoryLimit: "2GiB"}
	got := cfg
	got.Tokens = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config %+v\nwant %+v", got, want)
	}
	if len(cfg.Tokens) != 1 || cfg.Tokens[0].Name != "ops" || cfg.Tokens[0].Role != "admin" {
		t.Errorf("tokens %+v", cfg.Tokens)
	}

	cfg, err = parseConfig(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "./data" || cfg.APIListen != "127.0.0.1:8080" || cfg.OpenFlowListen != ":6653" || cfg.OpenFlowAdvertise != "" {
		t.Errorf("defaults %+v", cfg)
	}
}

func TestConfigRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		file string
		want string
	}{
		{"unknown key", nil, "datadir: x\n", "datadir"},
		{"not YAML", nil, "tokens: [\n", "yaml"},
		{"bad role", nil, "tokens: [{name: a, token: 0123456789abcdef0123, role: root}]\n", `"root"`},
		{"short token", nil, "tokens: [{name: a, token: abc, role: admin}]\n", "16"},
		{"bad listen in file", nil, "api_listen: localhost\n", "api_listen"},
		{"bad advertise flag", []string{"--openflow-advertise", "192.0.2.1:6653"}, "", "openflow-advertise"},
		{"bad log level", []string{"--log-level", "loud"}, "", "log-level"},
		{"bad memory limit flag", []string{"--memory-limit", "lots"}, "", "memory-limit"},
		{"memory limit too small in file", nil, "memory_limit: 10MiB\n", "memory_limit"},
		{"unknown flag", []string{"--verbose"}, "", "verbose"},
		{"negative limit", []string{"--api-max-requests", "-1"}, "", "api-max-requests"},
		{"token and digest", nil, "tokens: [{name: a, token: 0123456789abcdef0123, sha256: " + strings.Repeat("ab", 32) + ", role: admin}]\n", "not both"},
		{"missing file", []string{"--config", "/nonexistent/pm.yaml"}, "", "/nonexistent/pm.yaml"},
		{"arguments", []string{"serve"}, "", "serve"},
	} {
		args := c.args
		if c.file != "" {
			args = append(args, "--config", writeFile(t, c.file))
		}
		_, err := parseConfig(args, io.Discard)
		if _, ok := err.(errUsage); !ok || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a usage error naming %q", c.name, err, c.want)
		}
	}
}
