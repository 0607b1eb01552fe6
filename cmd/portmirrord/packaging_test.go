package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestHelpMatchesREADME: every flag --help lists is documented in the README's configuration table, with its
// config file key, and the README names no flag the daemon lacks.
func TestHelpMatchesREADME(t *testing.T) {
	var help bytes.Buffer
	if _, err := parseConfig([]string{"-h"}, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]+)`).FindAllStringSubmatch(help.String(), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 20 {
		t.Fatalf("found only %d flags in --help:\n%s", len(flags), help.String())
	}
	for f := range flags {
		if f == "config" {
			continue // --config names the file itself
		}
		if !bytes.Contains(readme, []byte("`--"+f+"`")) {
			t.Errorf("--%s is in --help but not in README.md", f)
		}
		if key := strings.ReplaceAll(f, "-", "_"); !bytes.Contains(readme, []byte("`"+key+"`")) {
			t.Errorf("the key %s of --%s is not in README.md", key, f)
		}
	}
	section := readme[bytes.Index(readme, []byte("## Configuration")):]
	section = section[:bytes.Index(section, []byte("```yaml"))]
	for _, m := range regexp.MustCompile("`--([a-z][a-z0-9-]+)`").FindAllSubmatch(section, -1) {
		if !flags[string(m[1])] {
			t.Errorf("README.md's configuration table names --%s, which portmirrord does not have", m[1])
		}
	}
}

// TestPackagedConfig: the package's default config parses, keeps the store in the unit's StateDirectory, and its
// commented limits are the defaults.
func TestPackagedConfig(t *testing.T) {
	cfg, err := parseConfig([]string{"--config", "../../packaging/portmirrord.yaml"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/var/lib/portmirror" || cfg.APIListen != "127.0.0.1:8080" || cfg.OpenFlowListen != ":6653" || len(cfg.Tokens) != 0 {
		t.Errorf("packaged config: %+v", cfg)
	}
	body, _ := os.ReadFile("../../packaging/portmirrord.yaml")
	for key, def := range map[string]int{"openflow_max_conns_per_addr": DefaultOpenFlowMaxConnsPerAddr,
		"api_max_conns_per_addr": DefaultAPIMaxConnsPerAddr, "api_max_requests": DefaultAPIMaxRequests} {
		if !regexp.MustCompile(`(?m)^# ` + key + `: ` + itoa(def) + `$`).Match(body) {
			t.Errorf("the packaged config does not show %s: %d", key, def)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestUnitHardening: the systemd unit runs the daemon as its own user on the packaged config, with the
// protections the package promises.
func TestUnitHardening(t *testing.T) {
	unit, err := os.ReadFile("../../packaging/portmirrord.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"User=portmirror", "Group=portmirror", "StateDirectory=portmirror", "ProtectSystem=strict", "NoNewPrivileges=yes",
		"CapabilityBoundingSet=", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID",
		"ExecStart=/usr/bin/portmirrord --config /etc/portmirror/portmirrord.yaml",
	} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `$`).Match(unit) {
			t.Errorf("the unit lacks the line %q", line)
		}
	}
	conffiles, _ := os.ReadFile("../../packaging/debian/conffiles")
	if strings.TrimSpace(string(conffiles)) != "/etc/portmirror/portmirrord.yaml" {
		t.Errorf("conffiles: %q", conffiles)
	}
}
