package console

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
)

// TestConsoleFirstLoad measures what the README states: the bytes a browser with an empty cache receives to
// open the console (headers and bodies, as the wire carries them) and the time until the Port Mirroring page
// is usable (its table shows its rows and Create Port Mirroring can be pressed), on loopback. With
// PORTMIRROR_CONSOLE_FLEET=n the daemon holds n port mirrors (one flow network each) first; with
// PORTMIRROR_CONSOLE_WARM=1 a second visit is measured too.
func TestConsoleFirstLoad(t *testing.T) {
	d := startDaemon(t, "")
	seed(t, d)
	fleet, _ := strconv.Atoi(os.Getenv("PORTMIRROR_CONSOLE_FLEET"))
	if fleet > 0 {
		start := time.Now()
		for i := 0; i < fleet; i += 100 {
			var fns, pms strings.Builder
			for j := i; j < min(i+100, fleet); j++ {
				u := fmt.Sprintf("00000000-0000-4000-9000-%012x", j)
				fmt.Fprintf(&fns, `f%d: createFlowNetwork(input: {uuid: "%s", name: "fleet-net-%d", cidr: "198.19.%d.0/30"}) { uuid } `, j, u, j, j%256)
				fmt.Fprintf(&pms, `p%d: createPortMirror(input: {name: "fleet-mirror-%05d", flowNetworkUuid: "%s"}) { uuid } `, j, j, u)
			}
			d.gql("", "mutation { "+fns.String()+"}", nil)
			d.gql("", "mutation { "+pms.String()+"}", nil)
		}
		t.Logf("%d port mirrors created in %v", fleet, time.Since(start).Round(time.Millisecond))
	}

	runs := []string{"cold"}
	if os.Getenv("PORTMIRROR_CONSOLE_WARM") != "" {
		runs = append(runs, "warm") // a second visit, with the browser's cache
	}
	for attempt, i := 1, 0; i < len(runs); attempt++ {
		run := runs[i]
		b := newBrowser(t, d.base)
		// intercepting requests costs a round trip to the test per request: measure without it (the other
		// test checks that nothing leaves the machine)
		b.run(fetch.Disable())
		if run == "warm" {
			b.navigate("/")
			b.find(nil, "table", "Port Mirrors")
			b.run(chromedp.Navigate("about:blank"))
		}
		b.mu.Lock()
		b.bytesRecv, b.requests, b.finished = 0, 0, 0
		b.mu.Unlock()
		start := time.Now()
		b.run(chromedp.Navigate(b.base + "/"))
		// usable: the table shows rows and Create Port Mirroring can be pressed. Polled with timers, not
		// animation frames (a browser that paints no frame, as a headless one may on a loaded machine, never
		// runs those); after 20 s the page's state is returned instead, for the failure message.
		var usable struct {
			Ms    float64 `json:"ms"`
			State string  `json:"state"`
		}
		b.eval(&usable, `new Promise((resolve) => {
			const check = () => {
				const rows = document.querySelectorAll('table[aria-label="Port Mirrors"] tbody tr');
				const create = [...document.querySelectorAll("button")].find((x) => x.textContent === "Create Port Mirroring");
				if (rows.length > 0 && create && !create.disabled) return resolve({ms: performance.now(), state: ""});
				if (performance.now() > 20000) return resolve({ms: -1, state: "readyState " + document.readyState +
					", rows " + rows.length + ", Create Port Mirroring " + (create ? (create.disabled ? "disabled" : "enabled") : "absent") +
					", the app " + (document.querySelector('p.boot[role="status"]') ? "running" : "not started") +
					", text: " + document.body.innerText.slice(0, 300) + ", requests (ms): " +
					performance.getEntriesByType("resource").map((e) => e.name.replace(location.origin, "") + " " +
						Math.round(e.startTime) + "-" + Math.round(e.responseEnd)).join(", ")});
				setTimeout(check, 5);
			};
			check();
		})`)
		if usable.Ms < 0 {
			b.screenshot(fmt.Sprintf("first-load-failure-%d", attempt))
			if attempt == 1 {
				// a headless browser on a machine loaded by the other packages' tests once stalled like this
				// in CI (and never alone): said, and measured again in a new browser; twice is a failure
				t.Logf("%s load: the Port Mirroring page was not usable 20 s after navigation started (%s); loading it again in a new browser", run, usable.State)
				continue
			}
			t.Fatalf("%s load: the Port Mirroring page was not usable 20 s after navigation started, twice: %s", run, usable.State)
		}
		i, attempt = i+1, 0
		usableMs := usable.Ms
		wall := time.Since(start)
		var timeline []string
		b.eval(&timeline, `performance.getEntriesByType("resource").map((e) => e.name.replace(location.origin, "") + " " + Math.round(e.startTime) + "-" + Math.round(e.responseEnd))`)
		t.Logf("%s load timeline (ms): %s", run, strings.Join(timeline, ", "))
		// the load's bytes are counted from the browser's events, which may trail the page: wait until every
		// response of the load (the document and each resource) has been reported
		b.eventually("the load's responses reported", func() error {
			b.mu.Lock()
			defer b.mu.Unlock()
			if b.finished < len(timeline)+1 {
				return fmt.Errorf("%d of %d responses reported", b.finished, len(timeline)+1)
			}
			return nil
		})
		b.mu.Lock()
		bytes := b.bytesRecv
		b.mu.Unlock()
		reqs := len(timeline) + 1
		t.Logf("%s load: %.0f bytes over the wire in %d requests (GraphQL polls included); the Port Mirroring page usable %.0f ms after navigation started (%v by the test's clock)",
			run, bytes, reqs, usableMs, wall.Round(time.Millisecond))
		if run == "cold" && (bytes > 120_000 || usableMs > 3000) {
			t.Errorf("the first load is %.0f bytes and %.0f ms: more than 120 kB or 3 s", bytes, usableMs)
		}
		b.mu.Lock()
		b.requests++ // not intercepted here
		b.mu.Unlock()
		b.checkClean()
	}
}
