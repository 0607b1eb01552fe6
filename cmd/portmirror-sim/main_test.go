package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"portmirror/controller"
	"portmirror/graphql"
	"portmirror/service"
	"portmirror/store"
)

// startDaemon wires what portmirrord wires (store in memory, service, controller, GraphQL API) and returns the
// GraphQL URL and the OpenFlow address.
func startDaemon(t *testing.T) (string, string) {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, store.Options{InMemory: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(st, service.Options{Logger: quiet})
	ctrl, err := controller.New(controller.Options{Service: svc, Logger: quiet, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	svc.SetLive(ctrl)
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx) }()
	api, err := graphql.New(graphql.Options{Backend: svc, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		st.Close()
	})
	return srv.URL + "/graphql", ctrl.Addr().String()
}

// TestSimAgainstController: the program registers a fleet, gets every session ACTIVE, sends frames and finds
// every copy where the rule wants it: exit 0 and a summary that says so. A second run with the same seed is
// refused (the fleet exists) with exit 1 and the reason in the summary; another seed works alongside.
func TestSimAgainstController(t *testing.T) {
	apiURL, of := startDaemon(t)
	var out, errOut bytes.Buffer
	code := run([]string{"--api", apiURL, "--openflow", of, "--hosts", "4", "--vms-per-host", "2", "--sessions", "5", "--frames", "300", "--seed", "9"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	var s Summary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, out.String())
	}
	if s.Bridges != 4 || s.BridgesConnected != 4 || s.Sessions != 5 || s.SessionsActive != 5 || s.FramesInjected != 300 ||
		s.CopiesExpected == 0 || s.CopiesDelivered != s.CopiesExpected || s.Duplicates != 0 || s.Misses != 0 || s.TimeToAllActiveSec < 0 {
		t.Errorf("summary %+v", s)
	}
	if !strings.Contains(errOut.String(), "arrived at monitor-") {
		t.Errorf("no copy shown on stderr:\n%s", errOut.String())
	}

	out.Reset()
	errOut.Reset()
	if code := run([]string{"--api", apiURL, "--openflow", of, "--seed", "9"}, &out, &errOut); code != 1 {
		t.Errorf("the same seed twice: exit %d, want 1", code)
	}
	if err := json.Unmarshal(out.Bytes(), &s); err != nil || !strings.Contains(s.Error, "already") {
		t.Errorf("the same seed twice: summary %+v (%v)", s, err)
	}
	out.Reset()
	if code := run([]string{"--api", apiURL, "--openflow", of, "--seed", "10"}, &out, &errOut); code != 0 {
		t.Errorf("another seed: exit %d\n%s", code, out.String())
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--hosts", "0"},
		{"--frames", "10", "--duration", "1s"},
		{"--sessions", "2", "--monitors-per-host", "0"},
		{"--frames", "-1"},
		{"extra"},
		{"--nope"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if errOut.Len() == 0 {
			t.Errorf("%q: no message", args)
		}
	}
}
