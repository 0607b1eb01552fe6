package console

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium, which .ci/run installs.
const chromiumPath = "/usr/bin/chromium"

// buildDaemon builds portmirrord once per test binary run.
var buildDaemon = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "portmirrord-console-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "portmirrord")
	out, err := exec.Command("go", "build", "-o", bin, "portmirror/cmd/portmirrord").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := buildDaemon(); err == nil {
		_ = os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

// daemon is a running portmirrord with its API and OpenFlow listener on free loopback ports.
type daemon struct {
	t      *testing.T
	base   string // http://127.0.0.1:port
	ofAddr string
	mu     sync.Mutex
	log    bytes.Buffer
}

func startDaemon(t *testing.T, config string) *daemon {
	t.Helper()
	bin, err := buildDaemon()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "portmirrord.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--data-dir", filepath.Join(dir, "data"), "--api-listen", "127.0.0.1:0",
		"--openflow-listen", "127.0.0.1:0", "--log-format", "json", "--config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t}
	ready := make(chan struct{})
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Bytes()
			d.mu.Lock()
			d.log.Write(line)
			d.log.WriteByte('\n')
			d.mu.Unlock()
			var rec struct {
				Msg     string `json:"msg"`
				APIAddr string `json:"api_addr"`
				Addr    string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil {
				switch rec.Msg {
				case "OpenFlow listener up":
					d.mu.Lock()
					d.ofAddr = rec.Addr
					d.mu.Unlock()
				case "portmirrord ready":
					d.mu.Lock()
					d.base = "http://" + rec.APIAddr
					d.mu.Unlock()
					close(ready)
				}
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case <-ready:
	case err := <-exited:
		exited <- err
		t.Fatalf("portmirrord exited before it was ready: %v\n%s", err, d.logText())
	case <-time.After(30 * time.Second):
		t.Fatalf("portmirrord not ready after 30s:\n%s", d.logText())
	}
	return d
}

func (d *daemon) logText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// gql runs a GraphQL request with the token and returns its data; any error fails the test.
func (d *daemon) gql(token, query string, vars map[string]any) map[string]any {
	d.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, d.base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r struct {
		Data   map[string]any `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(raw, &r); err != nil || len(r.Errors) > 0 || resp.StatusCode != 200 {
		d.t.Fatalf("%s\n%v: %d %s", query, vars, resp.StatusCode, raw)
	}
	return r.Data
}

// browser is one headless Chromium tab on the console, which records every request that would leave the
// machine (and blocks it), and every error the page reports.
type browser struct {
	t        *testing.T
	ctx      context.Context
	base     string
	shotsDir string

	mu        sync.Mutex
	external  []string // requests to anything but the daemon
	pageErrs  []string // exceptions, console errors, failed loads
	allow401  bool     // a 401 from /graphql is expected (signing in)
	requests  int
	bytesRecv float64
	finished  int // responses fully received (network.EventLoadingFinished)
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("the browser tests need Debian's chromium at %s (apt-get install chromium): %v", chromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1366, 900), chromedp.Flag("lang", "en-US"))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	// chromedp reports the CDP events it has no handler for (new ones of this Chromium) as errors: not ours
	ctx, cancelC := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "unhandled") {
			fmt.Fprintln(os.Stderr, "chromedp:", msg)
		}
	}))
	t.Cleanup(func() { cancelC(); cancelA() })
	shots := os.Getenv("PORTMIRROR_SCREENSHOTS")
	if shots == "" {
		shots = "screenshots"
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	// the first Run starts the browser, which lives as long as ctx (not as long as a Run's own deadline)
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	b := &browser{t: t, ctx: ctx, base: base, shotsDir: shots}
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *fetch.EventRequestPaused:
			go b.onRequest(e)
		case *network.EventLoadingFinished:
			b.mu.Lock()
			b.bytesRecv += e.EncodedDataLength
			b.finished++
			b.mu.Unlock()
		case *runtime.EventExceptionThrown:
			b.pageError("exception: " + e.ExceptionDetails.Error())
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError || e.Type == runtime.APITypeAssert {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				b.pageError("console." + string(e.Type) + ": " + strings.Join(parts, " "))
			}
		case *log.EventEntryAdded:
			if e.Entry.Level == log.LevelError {
				b.mu.Lock()
				allowed := b.allow401 && strings.Contains(e.Entry.Text, "401") && strings.HasSuffix(e.Entry.URL, "/graphql")
				b.mu.Unlock()
				if !allowed {
					b.pageError("log: " + e.Entry.Text + " " + e.Entry.URL)
				}
			}
		}
	})
	b.run(fetch.Enable().WithPatterns([]*fetch.RequestPattern{{URLPattern: "*"}}), log.Enable(), runtime.Enable(), network.Enable(), accessibility.Enable())
	return b
}

func (b *browser) onRequest(e *fetch.EventRequestPaused) {
	c := chromedp.FromContext(b.ctx)
	exec := cdp.WithExecutor(b.ctx, c.Target)
	b.mu.Lock()
	b.requests++
	b.mu.Unlock()
	if strings.HasPrefix(e.Request.URL, b.base+"/") {
		_ = fetch.ContinueRequest(e.RequestID).Do(exec)
		return
	}
	b.mu.Lock()
	b.external = append(b.external, e.Request.URL)
	b.mu.Unlock()
	_ = fetch.FailRequest(e.RequestID, network.ErrorReasonBlockedByClient).Do(exec)
}

func (b *browser) pageError(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pageErrs = append(b.pageErrs, s)
}

// checkClean fails the test on any request that left the machine and any page error so far.
func (b *browser) checkClean() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.requests == 0 {
		b.t.Errorf("the request interception saw no request at all: it is not working")
	}
	for _, u := range b.external {
		b.t.Errorf("the console requested another host: %s", u)
	}
	for _, e := range b.pageErrs {
		b.t.Errorf("page error: %s", e)
	}
	b.external, b.pageErrs = nil, nil
}

func (b *browser) run(actions ...chromedp.Action) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// eventually polls cond until it returns nil, or fails the test after 10 s with its last error.
func (b *browser) eventually(what string, cond func() error) {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.screenshot("failure")
			b.t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// node is an element found by role and accessible name, as a screen reader finds it.
type node struct {
	b    *browser
	id   cdp.BackendNodeID
	desc string
}

// query lists the elements with the role and accessible name (exact) inside scope (nil: the document) that
// the accessibility tree does not ignore (a modal dialog makes the page behind it inert).
func (b *browser) query(scope *node, role, name string) ([]cdp.BackendNodeID, error) {
	var out []cdp.BackendNodeID
	err := chromedp.Run(b.ctx, chromedp.ActionFunc(func(ctx context.Context) error {
		q := accessibility.QueryAXTree().WithRole(role).WithAccessibleName(name)
		if scope != nil {
			q = q.WithBackendNodeID(scope.id)
		} else {
			root, err := dom.GetDocument().WithDepth(0).Do(ctx)
			if err != nil {
				return err
			}
			q = q.WithNodeID(root.NodeID)
		}
		nodes, err := q.Do(ctx)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if !n.Ignored && n.BackendDOMNodeID != 0 {
				out = append(out, n.BackendDOMNodeID)
			}
		}
		return nil
	}))
	return out, err
}

// find waits for exactly one element with the role and name inside scope.
func (b *browser) find(scope *node, role, name string) *node {
	b.t.Helper()
	var n *node
	b.eventually(fmt.Sprintf("finding the %s %q", role, name), func() error {
		ids, err := b.query(scope, role, name)
		if err != nil {
			return err
		}
		if len(ids) != 1 {
			return fmt.Errorf("%d elements found", len(ids))
		}
		n = &node{b: b, id: ids[0], desc: role + " " + name}
		return nil
	})
	return n
}

// absent waits until no element has the role and name.
func (b *browser) absent(scope *node, role, name string) {
	b.t.Helper()
	b.eventually(fmt.Sprintf("the %s %q going away", role, name), func() error {
		ids, err := b.query(scope, role, name)
		if err != nil {
			return err
		}
		if len(ids) != 0 {
			return fmt.Errorf("%d still there", len(ids))
		}
		return nil
	})
}

// call runs fn with the element as this and returns its result decoded into out (may be nil).
func (n *node) call(out any, fn string, args ...any) error {
	return chromedp.Run(n.b.ctx, chromedp.ActionFunc(func(ctx context.Context) error {
		obj, err := dom.ResolveNode().WithBackendNodeID(n.id).Do(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = runtime.ReleaseObject(obj.ObjectID).Do(ctx) }()
		var cargs []*runtime.CallArgument
		for _, a := range args {
			raw, _ := json.Marshal(a)
			cargs = append(cargs, &runtime.CallArgument{Value: raw})
		}
		res, exc, err := runtime.CallFunctionOn(fn).WithObjectID(obj.ObjectID).WithArguments(cargs).WithReturnByValue(true).WithAwaitPromise(true).Do(ctx)
		if err != nil {
			return err
		}
		if exc != nil {
			return errors.New(exc.Error())
		}
		if out != nil && len(res.Value) > 0 {
			return json.Unmarshal(res.Value, out)
		}
		return nil
	}))
}

func (n *node) must(out any, fn string, args ...any) {
	n.b.t.Helper()
	if err := n.call(out, fn, args...); err != nil {
		n.b.t.Fatalf("%s: %v", n.desc, err)
	}
}

func (n *node) click() {
	n.b.t.Helper()
	var disabled bool
	n.must(&disabled, `function() { this.scrollIntoView({block: "center"}); return !!this.disabled; }`)
	if disabled {
		n.b.t.Fatalf("%s is disabled", n.desc)
	}
	n.must(nil, `function() { this.click(); }`)
}

// fill focuses a text field, empties it and types text as keystrokes.
func (n *node) fill(text string) {
	n.b.t.Helper()
	n.must(nil, `function() { this.focus(); this.select && this.select(); }`)
	n.b.run(chromedp.ActionFunc(func(ctx context.Context) error {
		return chromedp.KeyEvent("\b").Do(ctx)
	}))
	if text != "" {
		n.b.run(chromedp.ActionFunc(func(ctx context.Context) error {
			return chromedp.KeyEvent(text).Do(ctx)
		}))
	}
}

// choose picks the option of a select whose text starts with label; it must be enabled.
func (n *node) choose(label string) {
	n.b.t.Helper()
	n.b.eventually(fmt.Sprintf("choosing %q in %s", label, n.desc), func() error {
		var res string
		if err := n.call(&res, `function(label) {
			const o = [...this.options].find((o) => o.text.startsWith(label));
			if (!o) return "no option " + label + " among: " + [...this.options].map((o) => o.text).join(" | ");
			if (o.disabled) return "option " + o.text + " is disabled";
			if (this.disabled) return "the control is disabled";
			this.focus(); this.value = o.value; this.dispatchEvent(new Event("change", {bubbles: true}));
			return "";
		}`, label); err != nil {
			return err
		}
		if res != "" {
			return errors.New(res)
		}
		return nil
	})
}

// options lists a select's options as "text" or "text [disabled]".
func (n *node) options() []string {
	n.b.t.Helper()
	var out []string
	n.must(&out, `function() { return [...this.options].map((o) => o.text + (o.disabled ? " [disabled]" : "")); }`)
	return out
}

func (n *node) text() string {
	n.b.t.Helper()
	var s string
	n.must(&s, `function() { return this.innerText; }`)
	return s
}

// description is the text of the elements aria-describedby names.
func (n *node) description() string {
	n.b.t.Helper()
	var s string
	n.must(&s, `function() { return (this.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean)
		.map((id) => document.getElementById(id)).filter(Boolean).map((e) => e.textContent).join(" "); }`)
	return s
}

func (n *node) disabled() bool {
	n.b.t.Helper()
	var d bool
	n.must(&d, `function() { return !!this.disabled; }`)
	return d
}

func (b *browser) navigate(path string) {
	b.t.Helper()
	b.run(chromedp.Navigate(b.base + path))
}

func (b *browser) key(k string) {
	b.t.Helper()
	b.run(chromedp.KeyEvent(k))
}

func (b *browser) eval(out any, js string) {
	b.t.Helper()
	b.run(chromedp.Evaluate(js, out, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
}

// screenshot saves the whole page as name.png in the screenshots directory.
func (b *browser) screenshot(name string) {
	var buf []byte
	if err := chromedp.Run(b.ctx, chromedp.FullScreenshot(&buf, 100)); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.shotsDir, name+".png")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
	}
}

// axe runs axe-core (testdata/axe.min.js, not served by the daemon) on the page as it is, and fails the test on
// any serious or critical violation of WCAG 2.x A/AA or of axe's best practices.
func (b *browser) axe(where string) {
	b.t.Helper()
	src, err := os.ReadFile("testdata/axe.min.js")
	if err != nil {
		b.t.Fatal(err)
	}
	var loaded bool
	b.eval(&loaded, `typeof window.axe !== "undefined"`)
	if !loaded {
		b.run(chromedp.Evaluate(string(src), nil))
	}
	var violations []struct {
		ID     string `json:"id"`
		Impact string `json:"impact"`
		Help   string `json:"help"`
		Nodes  []struct {
			Target []any `json:"target"`
		} `json:"nodes"`
	}
	b.eval(&violations, `axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]}})
		.then((r) => r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({target: n.target}))})))`)
	for _, v := range violations {
		if v.Impact == "serious" || v.Impact == "critical" {
			b.t.Errorf("axe on %s: %s (%s): %s at %v", where, v.ID, v.Impact, v.Help, v.Nodes)
		} else {
			b.t.Logf("axe on %s (minor): %s (%s): %s", where, v.ID, v.Impact, v.Help)
		}
	}
}
