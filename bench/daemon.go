package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// daemon is a portmirrord process of our own, on its own data directory and loopback ports, stopped by pid.
type daemon struct {
	cmd    *exec.Cmd
	api    string // host:port
	of     string // host:port of the OpenFlow listener
	exited chan struct{}
	mu     sync.Mutex
	tail   []string // the last lines of its log
	client *http.Client
}

// moduleRoot is the directory of go.mod, so that the daemon can be built from anywhere in the module.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the portmirror module")
	}
	return filepath.Dir(gomod), nil
}

// daemonBinary builds portmirrord once per run into dir.
func (b *bencher) daemonBinary(ctx context.Context, dir string) (string, error) {
	if b.cfg.Daemon != "" {
		return b.cfg.Daemon, nil
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "portmirrord")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/portmirrord")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/portmirrord: %w: %s", err, out)
	}
	b.cfg.Daemon = bin
	return bin, nil
}

func startDaemon(ctx context.Context, bin, dataDir string) (*daemon, error) {
	d := &daemon{exited: make(chan struct{}), client: &http.Client{Timeout: 2 * time.Minute}}
	d.cmd = exec.Command(bin, "--data-dir", dataDir, "--api-listen", "127.0.0.1:0", "--openflow-listen", "127.0.0.1:0",
		"--log-format", "json", "--log-level", "info", "--openflow-max-conns-per-addr", "0")
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start portmirrord: %w", err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := false
		for sc.Scan() {
			line := sc.Text()
			var rec struct {
				Msg     string `json:"msg"`
				APIAddr string `json:"api_addr"`
				Addr    string `json:"addr"`
			}
			d.mu.Lock()
			d.tail = append(d.tail, line)
			if len(d.tail) > 20 {
				d.tail = d.tail[1:]
			}
			if json.Unmarshal([]byte(line), &rec) == nil {
				switch rec.Msg {
				case "OpenFlow listener up":
					d.of = rec.Addr
				case "portmirrord ready":
					d.api = rec.APIAddr
					if !once {
						once = true
						close(ready)
					}
				}
			}
			d.mu.Unlock()
		}
		_ = d.cmd.Wait()
		close(d.exited)
	}()
	select {
	case <-ready:
		return d, nil
	case <-d.exited:
		return nil, fmt.Errorf("portmirrord exited at start: %s", d.lastLog())
	case <-time.After(2 * time.Minute):
		d.stop()
		return nil, fmt.Errorf("portmirrord not ready within 2 minutes: %s", d.lastLog())
	case <-ctx.Done():
		d.stop()
		return nil, ctx.Err()
	}
}

func (d *daemon) lastLog() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.tail, "\n")
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// stop sends SIGTERM to the daemon by pid and waits for it to exit (SIGKILL after 20 s).
func (d *daemon) stop() {
	_ = syscall.Kill(d.pid(), syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(d.pid(), syscall.SIGKILL)
		<-d.exited
	}
}

// gql posts one GraphQL request and decodes data into out; GraphQL errors are an error.
func (d *daemon) gql(ctx context.Context, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+d.api+"/graphql", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return fmt.Errorf("POST /graphql: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("POST /graphql: reading the answer: %w", err)
	}
	var r struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("POST /graphql: HTTP %d: %w: %.200s", resp.StatusCode, err, raw)
	}
	if len(r.Errors) > 0 {
		return fmt.Errorf("POST /graphql: %s", r.Errors[0].Message)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /graphql: HTTP %d", resp.StatusCode)
	}
	if out != nil {
		return json.Unmarshal(r.Data, out)
	}
	return nil
}

// vmRSS is a process's resident set size in bytes, from /proc/PID/status.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// settledRSS reads the RSS after letting start-up or a load settle: the lowest of several reads over a second
// (the Go runtime returns freed memory in the background).
func settledRSS(pid int, wait time.Duration) (int64, error) {
	time.Sleep(wait)
	var low int64
	for i := range 5 {
		r, err := vmRSS(pid)
		if err != nil {
			return 0, err
		}
		if i == 0 || r < low {
			low = r
		}
		time.Sleep(200 * time.Millisecond)
	}
	return low, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
