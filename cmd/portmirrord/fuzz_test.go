package main

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"portmirror/graphql"
)

// FuzzConfigFile: any config file either stops the daemon with a usage error (exit status 2) or gives a config
// the daemon can run with: addresses that parse, a known log level and format, tokens the API accepts, limits
// not negative. Nothing panics.
func FuzzConfigFile(f *testing.F) {
	for _, s := range []string{
		"data_dir: /var/lib/pm\napi_listen: 0.0.0.0:9000\nlog_level: debug\n",
		"tokens:\n  - {name: ops, token: 0123456789abcdef0123, role: admin}\n  - {name: c, sha256: " +
			"5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8, role: viewer}\n",
		"openflow_advertise: ssl:192.0.2.1:6653\n",
		"api_max_requests: -3\nopenflow_max_conns_per_addr: 99999999999999999999\n",
		"tokens: [{name: a, token: x, role: root}]\n",
		"api_tls_cert: /nonexistent\n",
		"metrics_require_token: yes\nlog_format: xml\n",
		"data_dir: [1, 2]\n",
		"&a [*a]\n",
		"---\n---\n",
		"",
	} {
		f.Add([]byte(s))
	}
	path := filepath.Join(f.TempDir(), "portmirrord.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := parseConfig([]string{"--config", path}, io.Discard)
		if err != nil {
			var u errUsage
			if !errors.As(err, &u) {
				t.Fatalf("a config file failed with %T, not a usage error (exit 2): %v", err, err)
			}
			return
		}
		if _, _, err := net.SplitHostPort(cfg.APIListen); err != nil {
			t.Fatalf("accepted api_listen %q", cfg.APIListen)
		}
		if _, _, err := net.SplitHostPort(cfg.OpenFlowListen); err != nil {
			t.Fatalf("accepted openflow_listen %q", cfg.OpenFlowListen)
		}
		if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
			t.Fatalf("accepted log_format %q", cfg.LogFormat)
		}
		if cfg.OpenFlowMaxConnsPerAddr < 0 || cfg.APIMaxConnsPerAddr < 0 || cfg.APIMaxRequests < 0 {
			t.Fatalf("accepted a negative limit: %+v", cfg)
		}
		if err := graphql.ValidateTokens(cfg.apiTokens()); err != nil {
			t.Fatalf("accepted tokens the API refuses: %v", err)
		}
	})
}
