package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"portmirror/controller"
	"portmirror/graphql"
	"portmirror/ofwire"
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
		{"--openflow", "127.0.0.1:6653,"},
		{"--openflow", "127.0.0.1"},
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

// masterOnly listens for bridges and, on each, asks for MASTER with generation id 1 and then only answers
// echoes: a second controller that programs nothing.
func masterOnly(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				out := ofwire.AppendHello(nil, 1)
				out = ofwire.AppendRole(out, ofwire.TypeRoleRequest, 1, ofwire.RoleMaster, 1)
				if _, err := nc.Write(out); err != nil {
					return
				}
				r := bufio.NewReader(nc)
				for {
					m, err := ofwire.ReadMessage(r, 0)
					if err != nil {
						return
					}
					if m.Type == ofwire.TypeEchoRequest {
						if _, err := nc.Write(ofwire.AppendEcho(nil, ofwire.TypeEchoReply, m.Xid, m.Body)); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestSeveralControllers: --openflow takes a list; every bridge connects to each controller, and the summary
// says which one is every bridge's master (here the second, which asked; the daemon stays EQUAL and programs).
func TestSeveralControllers(t *testing.T) {
	apiURL, of := startDaemon(t)
	other := masterOnly(t)
	var out, errOut bytes.Buffer
	code := run([]string{"--api", apiURL, "--openflow", of + ", " + other, "--hosts", "2", "--sessions", "1", "--frames", "20", "--seed", "11"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	var s Summary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, out.String())
	}
	if s.BridgesConnected != 2 || s.SessionsActive != 1 || s.Misses != 0 || len(s.Masters) != 1 || s.Masters[other] != 2 {
		t.Errorf("summary %+v, want 2 bridges connected, 1 session active, both bridges mastered by %s", s, other)
	}
}
