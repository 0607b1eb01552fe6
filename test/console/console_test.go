// Package console tests the web console in a real browser: headless Chromium (Debian's chromium) drives the
// console of a real portmirrord, by the roles and names of CONSOLE.md, and every result is checked through the
// API. Screenshots of each page are saved in ./screenshots (or $PORTMIRROR_SCREENSHOTS).
package console

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"portmirror/simulator/dataplane"
	"portmirror/simulator/ofsim"
)

const (
	adminToken  = "admin-token-0123456789abcdef"
	viewerToken = "viewer-token-0123456789abcdef"
	config      = `tokens:
  - {name: ops, token: ` + adminToken + `, role: admin}
  - {name: watcher, token: ` + viewerToken + `, role: viewer}
`
)

func uuidN(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", n) }

// fixture is the inventory the console works on: cluster alpha with hv1 (a simulated bridge connected to the
// daemon) holding web (default NIC d1) and monitor (default NIC d2, capture NIC d3); cluster beta, to which no
// flow network is attached, with hv3 holding other (d6); flow network mirror-net (free) and busy-net, occupied by
// the port mirror "existing".
type fixture struct {
	webNic, monDefault, capture, otherNic string
	mirrorNet, busyNet, existing          string
}

func seed(t *testing.T, d *daemon) fixture {
	t.Helper()
	f := fixture{webNic: uuidN(0xd1), monDefault: uuidN(0xd2), capture: uuidN(0xd3), otherNic: uuidN(0xd6),
		mirrorNet: uuidN(0xf1), busyNet: uuidN(0xf2)}
	g := func(q string, vars map[string]any) map[string]any { return d.gql(adminToken, q, vars) }
	g(`mutation { a: createCluster(input: {uuid: "`+uuidN(0xc1)+`", name: "alpha"}) { uuid }
	  b: createCluster(input: {uuid: "`+uuidN(0xc2)+`", name: "beta"}) { uuid } }`, nil)
	g(`mutation { a: registerHost(input: {uuid: "`+uuidN(0xa1)+`", name: "hv1", clusterUuid: "`+uuidN(0xc1)+`", datapathId: "abc1", managementIp: "198.18.10.1"}) { uuid }
	  b: registerHost(input: {uuid: "`+uuidN(0xa3)+`", name: "hv3", clusterUuid: "`+uuidN(0xc2)+`", managementIp: "198.18.10.3"}) { uuid } }`, nil)
	vm := `mutation($in: VmInstanceInput!) { createVmInstance(input: $in) { uuid } }`
	g(vm, map[string]any{"in": map[string]any{"name": "web", "hostUuid": uuidN(0xa1), "nics": []any{
		map[string]any{"uuid": f.webNic, "mac": "52:54:00:00:00:d1", "ip": "10.0.0.11", "isDefault": true, "portName": "vnet-web"}}}})
	g(vm, map[string]any{"in": map[string]any{"name": "monitor", "hostUuid": uuidN(0xa1), "nics": []any{
		map[string]any{"uuid": f.monDefault, "mac": "52:54:00:00:00:d2", "ip": "10.0.0.12", "isDefault": true},
		map[string]any{"uuid": f.capture, "mac": "52:54:00:00:00:d3", "portName": "vnet-cap"}}}})
	g(vm, map[string]any{"in": map[string]any{"name": "other", "hostUuid": uuidN(0xa3), "nics": []any{
		map[string]any{"uuid": f.otherNic, "mac": "52:54:00:00:00:d6", "ip": "10.0.1.6", "isDefault": true}}}})
	fn := `mutation($in: FlowNetworkInput!) { createFlowNetwork(input: $in) { uuid } }`
	g(fn, map[string]any{"in": map[string]any{"uuid": f.mirrorNet, "name": "mirror-net", "cidr": "198.18.0.0/24", "clusterUuids": []any{uuidN(0xc1)}}})
	g(fn, map[string]any{"in": map[string]any{"uuid": f.busyNet, "name": "busy-net", "cidr": "198.18.1.0/24", "clusterUuids": []any{uuidN(0xc1)}}})
	pm := g(`mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { uuid } }`, map[string]any{"in": map[string]any{
		"name": "existing", "description": "watches nothing yet", "flowNetworkUuid": f.busyNet}})
	f.existing = pm["createPortMirror"].(map[string]any)["uuid"].(string)
	return f
}

// connectSwitch runs a simulated hv1 bridge against the daemon, so that sessions become ACTIVE.
func connectSwitch(t *testing.T, d *daemon) {
	br := dataplane.NewBridge("br-int", dataplane.MAC{0x02, 0, 0, 0, 0, 0x01})
	for _, p := range []dataplane.Port{{No: 1, Name: "vnet-web", Up: true}, {No: 2, Name: "vnet-cap", Up: true}} {
		if err := br.AddPort(p); err != nil {
			t.Fatal(err)
		}
	}
	d.mu.Lock()
	of := d.ofAddr
	d.mu.Unlock()
	sw := ofsim.New(ofsim.Config{Controller: of, DatapathID: 0xabc1, Bridge: br})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sw.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// pmState is a port mirror as the API tells it: "name|description|state|session:type:status,..."; "" when gone.
func pmState(d *daemon, uuid string) string {
	p, _ := d.gql(adminToken, `query($u: ID!) { portMirror(uuid: $u) { name description state sessions { name type status } } }`,
		map[string]any{"u": uuid})["portMirror"].(map[string]any)
	if p == nil {
		return ""
	}
	var ss []string
	for _, s := range p["sessions"].([]any) {
		m := s.(map[string]any)
		ss = append(ss, fmt.Sprintf("%s:%s:%s", m["name"], m["type"], m["status"]))
	}
	desc, _ := p["description"].(string)
	return fmt.Sprintf("%s|%s|%s|%s", p["name"], desc, p["state"], strings.Join(ss, ","))
}

// pmStored is pmState without the sessions' live status (which moves on its own as the controller converges):
// what a refused mutation must leave as it was.
func pmStored(d *daemon, uuid string) string {
	var ss []string
	for _, part := range strings.Split(pmState(d, uuid), ",") {
		if i := strings.LastIndex(part, ":"); i > strings.LastIndex(part, "|") {
			part = part[:i]
		}
		ss = append(ss, part)
	}
	return strings.Join(ss, ",")
}

func findPM(d *daemon, name string) string {
	for _, p := range d.gql(adminToken, `{ portMirrors { uuid name } }`, nil)["portMirrors"].([]any) {
		m := p.(map[string]any)
		if m["name"] == name {
			return m["uuid"].(string)
		}
	}
	return ""
}

func TestConsole(t *testing.T) {
	d := startDaemon(t, config)
	f := seed(t, d)
	connectSwitch(t, d)
	b := newBrowser(t, d.base)

	if !t.Run("sign in", func(t *testing.T) {
		b.t = t
		b.mu.Lock()
		b.allow401 = true // asking who we are without a token, and a wrong token, are answered 401
		b.mu.Unlock()
		b.navigate("/")
		b.find(nil, "heading", "Sign in")
		b.axe("sign in")
		b.screenshot("01-sign-in")
		b.find(nil, "textbox", "Token").fill("not-a-token-at-all-0000")
		b.find(nil, "button", "Sign in").click()
		if a := b.find(nil, "alert", "").text(); !strings.Contains(a, "not accepted") {
			t.Errorf("wrong token alert %q", a)
		}
		b.find(nil, "textbox", "Token").fill(viewerToken)
		b.find(nil, "button", "Sign in").click()
		b.find(nil, "heading", "Port Mirroring")
		b.mu.Lock()
		b.allow401 = false
		b.mu.Unlock()
	}) {
		return
	}

	if !t.Run("viewer sees all and can press nothing", func(t *testing.T) {
		b.t = t
		create := b.find(nil, "button", "Create Port Mirroring")
		if !create.disabled() || !strings.Contains(create.description(), "viewer") {
			t.Errorf("Create Port Mirroring for a viewer: disabled %v, description %q", create.disabled(), create.description())
		}
		b.find(b.find(nil, "table", "Port Mirrors"), "link", "existing").click()
		b.find(nil, "heading", "existing")
		for _, name := range []string{"Change name and description", "Enable", "Add session", "Delete"} {
			n := b.find(nil, "button", name)
			if !n.disabled() || !strings.Contains(n.description(), "viewer") {
				t.Errorf("%s for a viewer: disabled %v, description %q", name, n.disabled(), n.description())
			}
		}
		b.axe("port mirror page, viewer")
		b.screenshot("02-viewer-port-mirror")
		b.find(nil, "button", "Sign out").click()
		b.find(nil, "heading", "Sign in")
		b.find(nil, "textbox", "Token").fill(adminToken)
		b.find(nil, "button", "Sign in").click()
		b.find(nil, "button", "Sign out")
	}) {
		return
	}

	var pm string
	if !t.Run("create with enable immediately and a session", func(t *testing.T) {
		b.t = t
		b.find(b.find(nil, "navigation", "Main"), "link", "Port Mirroring").click()
		b.find(nil, "heading", "Port Mirroring")
		b.find(nil, "table", "Port Mirrors")
		b.axe("Port Mirroring")
		b.screenshot("03-port-mirroring")

		// Escape closes the dialog, and nothing is created
		b.find(nil, "button", "Create Port Mirroring").click()
		dlg := b.find(nil, "dialog", "Create Port Mirroring")
		b.find(dlg, "textbox", "Name").fill("abandoned")
		// Tab and Shift+Tab stay inside the dialog
		for i := range 30 {
			if i < 20 {
				b.key("\t")
			} else {
				b.run(chromedp.KeyEvent("\t", chromedp.KeyModifiers(input.ModifierShift)))
			}
			var inside bool
			dlg.must(&inside, `function() { return this.contains(document.activeElement); }`)
			if !inside {
				t.Fatalf("Tab %d left the dialog", i+1)
			}
		}
		b.key("\u001b") // Escape
		b.absent(nil, "dialog", "Create Port Mirroring")
		if id := findPM(d, "abandoned"); id != "" {
			t.Errorf("Escape created a port mirror")
		}

		b.find(nil, "button", "Create Port Mirroring").click()
		dlg = b.find(nil, "dialog", "Create Port Mirroring")
		b.find(dlg, "textbox", "Name").fill("web-watch")
		b.find(dlg, "textbox", "Description").fill("copies web's traffic to the monitor")
		fn := b.find(dlg, "combobox", "Flow Network")
		opts := strings.Join(fn.options(), " | ")
		if !strings.Contains(opts, "busy-net — occupied by existing [disabled]") || strings.Contains(opts, "mirror-net [disabled]") {
			t.Errorf("flow network options: %s", opts)
		}
		fn.choose("mirror-net")
		enable := b.find(dlg, "checkbox", "Enable immediately after creation")
		if !strings.Contains(enable.description(), "bandwidth") {
			t.Errorf("Enable immediately's description %q does not warn about bandwidth", enable.description())
		}
		enable.click()
		b.find(dlg, "checkbox", "Add session immediately after creation").click()
		s1 := b.find(dlg, "group", "Session 1")
		b.find(s1, "textbox", "Name").fill("web-both")
		b.find(s1, "combobox", "Type").choose("Bidirection")
		// a VM on a host whose cluster the flow network is not attached to: nothing offered, and why
		b.find(s1, "combobox", "Source VM Instance").choose("other")
		src := b.find(s1, "combobox", "Source NIC")
		b.eventually("other's NIC not offered as a source", func() error {
			if o := src.options(); len(o) != 1 || !strings.Contains(src.description(), "cluster is not attached") {
				return fmt.Errorf("options %v, description %q", o, src.description())
			}
			return nil
		})
		b.find(s1, "combobox", "Source VM Instance").choose("web")
		b.find(s1, "combobox", "Source NIC").choose("52:54:00:00:00:d1")
		b.find(s1, "combobox", "Destination VM Instance").choose("monitor")
		dst := b.find(s1, "combobox", "Destination NIC")
		b.eventually("the destination NICs of monitor", func() error {
			o := strings.Join(dst.options(), " | ")
			if strings.Contains(o, "52:54:00:00:00:d2") || !strings.Contains(o, "52:54:00:00:00:d3") || strings.Contains(o, "[disabled]") {
				return fmt.Errorf("options %s", o)
			}
			return nil
		})
		desc := dst.description()
		for _, want := range []string{"default network NIC", "QoS", "52:54:00:00:00:d2 (10.0.0.12), the VM's default NIC"} {
			if !strings.Contains(desc, want) {
				t.Errorf("the destination picker's description %q lacks %q", desc, want)
			}
		}
		dst.choose("52:54:00:00:00:d3")
		b.axe("Create Port Mirroring dialog")
		b.screenshot("04-create-port-mirroring")
		b.find(dlg, "button", "Add another session").click()
		b.find(dlg, "group", "Session 2")
		b.find(dlg, "button", "Remove session 2").click()
		b.absent(dlg, "group", "Session 2")
		b.find(dlg, "button", "OK").click()
		b.absent(nil, "dialog", "Create Port Mirroring")
		pm = findPM(d, "web-watch")
		if got := pmState(d, pm); !strings.HasPrefix(got, "web-watch|copies web's traffic to the monitor|ENABLED|web-both:BIDIRECTION:") {
			t.Fatalf("created %q", got)
		}
		b.find(b.find(nil, "table", "Port Mirrors"), "link", "web-watch")

		// the list filters by name, and pages (one page here: both buttons there, disabled)
		b.find(nil, "textbox", "Filter by name").fill("EXIST")
		b.absent(b.find(nil, "table", "Port Mirrors"), "link", "web-watch")
		b.find(b.find(nil, "table", "Port Mirrors"), "link", "existing")
		for _, name := range []string{"Previous page", "Next page"} {
			if !b.find(nil, "button", name).disabled() {
				t.Errorf("%s is enabled on the only page", name)
			}
		}
		b.find(nil, "textbox", "Filter by name").fill("")
		b.find(b.find(nil, "table", "Port Mirrors"), "link", "web-watch")
		// the list counts each port mirror's sessions by status (sessionCount, sessionStatusCounts)
		b.eventually("web-watch's session counted in the list", func() error {
			rows := strings.Split(b.find(nil, "table", "Port Mirrors").text(), "\n")
			for _, row := range rows {
				if strings.HasPrefix(row, "web-watch") && strings.Contains(row, "1 session:") &&
					(strings.Contains(row, "1 Active") || strings.Contains(row, "1 Pending")) {
					return nil
				}
			}
			return fmt.Errorf("Port Mirrors table: %q", rows)
		})
	}) {
		return
	}

	if !t.Run("live status", func(t *testing.T) {
		b.t = t
		b.find(b.find(nil, "table", "Port Mirrors"), "link", "web-watch").click()
		b.find(nil, "heading", "web-watch")
		sessions := b.find(nil, "table", "Sessions")
		start := time.Now()
		b.eventually("the session shown Active", func() error {
			if txt := sessions.text(); !strings.Contains(txt, "Active") {
				return fmt.Errorf("sessions table: %q", txt)
			}
			return nil
		})
		t.Logf("the session showed Active %v after the page opened", time.Since(start).Round(time.Millisecond))
		// the page follows changes made elsewhere (here through the API) within two seconds, without a reload
		for _, c := range []struct{ op, want string }{{"disablePortMirror", "Inactive"}, {"enablePortMirror", "Active"}} {
			d.gql(adminToken, `mutation($u: ID!) { `+c.op+`(uuid: $u) { uuid } }`, map[string]any{"u": pm})
			start := time.Now()
			b.eventually("the session shown "+c.want, func() error {
				if txt := sessions.text(); !strings.Contains(txt, c.want) {
					return fmt.Errorf("sessions table: %q", txt)
				}
				return nil
			})
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("after %s the page showed %s only %v later", c.op, c.want, took)
			} else {
				t.Logf("after %s the page showed %s %v later", c.op, c.want, took.Round(time.Millisecond))
			}
		}
		b.axe("port mirror page")
		b.screenshot("05-port-mirror")
	}) {
		return
	}

	if !t.Run("rename, disable, enable", func(t *testing.T) {
		b.t = t
		b.find(nil, "button", "Change name and description").click()
		dlg := b.find(nil, "dialog", "Change name and description")
		b.find(dlg, "textbox", "Name").fill("web-watch-2")
		b.find(dlg, "textbox", "Description").fill("renamed")
		b.axe("Change name and description dialog")
		b.find(dlg, "button", "OK").click()
		b.find(nil, "heading", "web-watch-2")
		if got := pmState(d, pm); !strings.HasPrefix(got, "web-watch-2|renamed|ENABLED|") {
			t.Errorf("after rename: %q", got)
		}

		b.find(nil, "button", "Disable").click()
		b.eventually("disabled through the API", func() error {
			if got := pmState(d, pm); !strings.Contains(got, "|DISABLED|web-both:BIDIRECTION:INACTIVE") {
				return fmt.Errorf("%q", got)
			}
			return nil
		})
		sessions := b.find(nil, "table", "Sessions")
		b.eventually("the session shown Inactive", func() error {
			if txt := sessions.text(); !strings.Contains(txt, "Inactive") {
				return fmt.Errorf("sessions table: %q", txt)
			}
			return nil
		})
		// the pressed button is now disabled: focus went to the other one, for the keyboard
		b.eventually("focus on Enable after Disable", func() error {
			var f string
			b.eval(&f, `document.activeElement.textContent`)
			if f != "Enable" {
				return fmt.Errorf("focus on %q", f)
			}
			return nil
		})
		b.find(nil, "button", "Enable").click()
		b.eventually("enabled through the API", func() error {
			if got := pmState(d, pm); !strings.Contains(got, "|ENABLED|") {
				return fmt.Errorf("%q", got)
			}
			return nil
		})
	}) {
		return
	}

	if !t.Run("add session, refused duplicate, delete session", func(t *testing.T) {
		b.t = t
		addSession := func(name, typ string) *node {
			b.find(nil, "button", "Add session").click()
			dlg := b.find(nil, "dialog", "Add Session")
			b.find(dlg, "textbox", "Name").fill(name)
			b.find(dlg, "combobox", "Type").choose(typ)
			b.find(dlg, "combobox", "Source VM Instance").choose("web")
			b.find(dlg, "combobox", "Source NIC").choose("52:54:00:00:00:d1")
			b.find(dlg, "combobox", "Destination VM Instance").choose("monitor")
			b.find(dlg, "combobox", "Destination NIC").choose("52:54:00:00:00:d3")
			return dlg
		}
		before := pmStored(d, pm)
		dlg := addSession("dup", "Bidirection")
		b.find(dlg, "button", "OK").click()
		alert := b.find(dlg, "alert", "")
		if txt := alert.text(); !strings.Contains(txt, "DUPLICATE_SESSION") || !strings.Contains(txt, "web-both") {
			t.Errorf("the refusal reads %q", txt)
		}
		var typed string
		b.find(dlg, "textbox", "Name").must(&typed, `function() { return this.value; }`)
		if typed != "dup" {
			t.Errorf("the dialog lost what was typed: %q", typed)
		}
		b.axe("Add Session dialog with a refusal")
		b.screenshot("06-add-session-refused")
		if got := pmStored(d, pm); got != before {
			t.Errorf("the refused session changed %q into %q", before, got)
		}
		b.find(dlg, "button", "Cancel").click()
		b.absent(nil, "dialog", "Add Session")

		dlg = addSession("web-in", "Ingress")
		b.find(dlg, "combobox", "Expires").choose("In 1 day")
		b.find(dlg, "button", "OK").click()
		b.absent(nil, "dialog", "Add Session")
		b.eventually("two sessions through the API", func() error {
			if got := pmState(d, pm); !strings.Contains(got, "web-in:INGRESS:") {
				return fmt.Errorf("%q", got)
			}
			return nil
		})
		// the Sessions table says when each session expires
		b.eventually("the Expires column", func() error {
			if txt := b.find(nil, "table", "Sessions").text(); !strings.Contains(txt, "Expires") || !strings.Contains(txt, "Never") ||
				!strings.Contains(txt, time.Now().Add(24*time.Hour).Format("2006-01-02")) {
				return fmt.Errorf("%q", txt)
			}
			return nil
		})
		// the expiry chosen in the dialog reached the API: a day from now
		for _, s := range d.gql(adminToken, `query($u: ID!) { portMirror(uuid: $u) { sessions { name expiresAt } } }`,
			map[string]any{"u": pm})["portMirror"].(map[string]any)["sessions"].([]any) {
			m := s.(map[string]any)
			if m["name"] != "web-in" {
				continue
			}
			at, _ := m["expiresAt"].(string)
			when, err := time.Parse(time.RFC3339Nano, at)
			if left := time.Until(when); err != nil || left < 23*time.Hour || left > 24*time.Hour {
				t.Errorf("web-in expires at %q, want a day from now", at)
			}
		}

		rows := b.find(nil, "table", "Sessions")
		var buttons []string
		b.eventually("a Delete session button per row", func() error {
			ids, err := b.query(rows, "button", "Delete session")
			if err != nil || len(ids) != 2 {
				return fmt.Errorf("%d buttons, %v", len(ids), err)
			}
			n := &node{b: b, id: ids[1], desc: "the second Delete session"}
			return n.call(&buttons, `function() { return [this.closest("tr").innerText]; }`)
		})
		if !strings.Contains(buttons[0], "web-in") {
			t.Fatalf("the second row is %q", buttons[0])
		}
		ids, _ := b.query(rows, "button", "Delete session")
		(&node{b: b, id: ids[1], desc: "Delete session of web-in"}).click()
		confirm := b.find(nil, "alertdialog", "Delete session")
		b.axe("Delete session confirmation")
		b.find(confirm, "button", "OK").click()
		b.absent(nil, "alertdialog", "Delete session")
		b.eventually("one session through the API", func() error {
			if got := pmState(d, pm); strings.Contains(got, "web-in") || !strings.Contains(got, "web-both") {
				return fmt.Errorf("%q", got)
			}
			return nil
		})

		// Probe session: on an enabled port mirror it runs and its outcome (delivered, or why not) shows in the
		// row; on a disabled one the button is disabled and says why.
		probeBtn := b.find(rows, "button", "Probe session")
		var disabled bool
		probeBtn.must(&disabled, `function() { return !!this.disabled; }`)
		if enabled := strings.Contains(pmState(d, pm), "|ENABLED|"); disabled == enabled {
			t.Errorf("Probe session disabled=%v on a port mirror %q", disabled, pmState(d, pm))
		} else if !disabled {
			probeBtn.click()
			b.eventually("the probe's outcome in the row", func() error {
				var row []string
				if err := probeBtn.call(&row, `function() { return [this.closest("tr").innerText]; }`); err != nil {
					return err
				}
				if !strings.Contains(row[0], "Probe delivered") && !strings.Contains(row[0], "Probe not delivered") {
					return fmt.Errorf("row reads %q", row[0])
				}
				t.Logf("console: the row after Probe session: %q", row[0])
				return nil
			})
			b.axe("a probe's outcome")
		}
	}) {
		return
	}

	if !t.Run("audit trail", func(t *testing.T) {
		b.t = t
		audit := b.find(nil, "table", "Audit")
		b.eventually("the refused session in the port mirror's audit", func() error {
			txt := audit.text()
			for _, want := range []string{"deletePortMirrorSession", "addPortMirrorSession", "Failed", "DUPLICATE_SESSION",
				"enablePortMirror", "disablePortMirror", "updatePortMirror", "createPortMirror", "Success", "ops"} {
				if !strings.Contains(txt, want) {
					return fmt.Errorf("the audit table lacks %s: %q", want, txt)
				}
			}
			return nil
		})
		b.find(b.find(nil, "navigation", "Main"), "link", "Audit").click()
		b.find(nil, "heading", "Audit")
		b.find(nil, "textbox", "Actor").fill("watcher")
		b.eventually("the audit page filtered by actor", func() error {
			txt := b.find(nil, "table", "Audit").text()
			if strings.Contains(txt, "ops") || strings.Contains(txt, "createPortMirror") {
				return fmt.Errorf("%q", txt)
			}
			return nil
		})
		b.find(nil, "textbox", "Actor").fill("")
		b.find(nil, "combobox", "Operation").choose("addPortMirrorSession")
		b.eventually("the audit page filtered by operation", func() error {
			txt := b.find(nil, "table", "Audit").text()
			if !strings.Contains(txt, "Failed") || strings.Contains(txt, "createPortMirror") {
				return fmt.Errorf("%q", txt)
			}
			return nil
		})
		b.axe("Audit")
		b.screenshot("07-audit")
	}) {
		return
	}

	if !t.Run("other pages", func(t *testing.T) {
		b.t = t
		nav := b.find(nil, "navigation", "Main")
		b.find(nav, "link", "Flow Networks").click()
		b.find(nil, "heading", "Flow Networks")
		b.eventually("flow networks listed", func() error {
			txt := b.find(nil, "table", "Flow Networks").text()
			if !strings.Contains(txt, "mirror-net") || !strings.Contains(txt, "web-watch-2") || !strings.Contains(txt, "alpha") {
				return fmt.Errorf("%q", txt)
			}
			return nil
		})
		b.axe("Flow Networks")
		b.screenshot("08-flow-networks")
		b.find(nil, "button", "Attach to cluster: mirror-net").click()
		dlg := b.find(nil, "dialog", "Attach mirror-net to a cluster")
		b.find(dlg, "combobox", "Cluster").choose("beta")
		b.find(dlg, "button", "OK").click()
		b.eventually("mirror-net attached to beta", func() error {
			fn := d.gql(adminToken, `query($u: ID!) { flowNetwork(uuid: $u) { clusters { name } } }`, map[string]any{"u": f.mirrorNet})
			if s := fmt.Sprint(fn); !strings.Contains(s, "beta") {
				return fmt.Errorf("%s", s)
			}
			return nil
		})
		b.find(nil, "button", "Detach mirror-net from beta").click()
		b.eventually("mirror-net detached from beta", func() error {
			fn := d.gql(adminToken, `query($u: ID!) { flowNetwork(uuid: $u) { clusters { name } } }`, map[string]any{"u": f.mirrorNet})
			if s := fmt.Sprint(fn); strings.Contains(s, "beta") {
				return fmt.Errorf("%s", s)
			}
			return nil
		})

		// An ERSPAN flow network, created from the dialog that offers every encapsulation.
		b.find(nil, "button", "Create Flow Network").click()
		dlg = b.find(nil, "dialog", "Create Flow Network")
		b.find(dlg, "textbox", "Name").fill("span-net")
		b.find(dlg, "textbox", "CIDR").fill("198.18.50.0/24")
		encap := b.find(dlg, "combobox", "Encapsulation")
		if opts := strings.Join(encap.options(), "|"); !strings.Contains(opts, "ERSPAN type II (ERSPAN_V1)") || !strings.Contains(opts, "ERSPAN type III (ERSPAN_V2)") {
			t.Errorf("encapsulations offered: %s", opts)
		}
		if !strings.Contains(encap.description(), "1023") {
			t.Errorf("encapsulation description %q", encap.description())
		}
		encap.choose("ERSPAN type III (ERSPAN_V2)")
		b.find(dlg, "button", "OK").click()
		b.eventually("span-net created as ERSPAN_V2", func() error {
			txt := b.find(nil, "table", "Flow Networks").text()
			if !strings.Contains(txt, "span-net") || !strings.Contains(txt, "ERSPAN_V2") {
				return fmt.Errorf("%q", txt)
			}
			return nil
		})

		b.find(nav, "link", "Hosts").click()
		b.find(nil, "heading", "Hosts")
		b.eventually("hv1 connected", func() error {
			txt := b.find(nil, "table", "Hosts").text()
			if !strings.Contains(txt, "hv1") || !strings.Contains(txt, "Connected") || !strings.Contains(txt, "Not connected") {
				return fmt.Errorf("%q", txt)
			}
			return nil
		})
		b.axe("Hosts")
		b.screenshot("09-hosts")

		b.find(nav, "link", "VM Instances").click()
		b.find(nil, "heading", "VM Instances")
		b.eventually("NICs and where they are bound", func() error {
			txt := b.find(nil, "table", "VM Instances").text()
			if !strings.Contains(txt, "52:54:00:00:00:d3") || !strings.Contains(txt, "bound to port 2 (vnet-cap)") || !strings.Contains(txt, "not bound") {
				return fmt.Errorf("%q", txt)
			}
			return nil
		})
		b.find(nil, "textbox", "Filter by name").fill("mon")
		b.eventually("the VM list filtered", func() error {
			txt := b.find(nil, "table", "VM Instances").text()
			if strings.Contains(txt, "web") || !strings.Contains(txt, "monitor") {
				return fmt.Errorf("%q", txt)
			}
			return nil
		})
		b.axe("VM Instances")
		b.screenshot("10-vm-instances")
	}) {
		return
	}

	if !t.Run("delete", func(t *testing.T) {
		b.t = t
		b.navigate("/#/port-mirrors/" + pm)
		b.find(nil, "heading", "web-watch-2")
		b.find(nil, "button", "Delete").click()
		dlg := b.find(nil, "alertdialog", "Delete port mirror")
		var focused string
		dlg.must(&focused, `function() { return this.contains(document.activeElement) ? document.activeElement.textContent : ""; }`)
		if focused != "Cancel" {
			t.Errorf("the confirmation opened with focus on %q, want Cancel", focused)
		}
		b.key("\u001b")
		b.absent(nil, "alertdialog", "Delete port mirror")
		if pmState(d, pm) == "" {
			t.Fatal("Escape on the confirmation deleted the port mirror")
		}
		b.find(nil, "button", "Delete").click()
		dlg = b.find(nil, "alertdialog", "Delete port mirror")
		b.find(dlg, "button", "OK").click()
		b.find(nil, "heading", "Port Mirroring")
		if got := pmState(d, pm); got != "" {
			t.Errorf("after Delete the API still has %q", got)
		}
	}) {
		return
	}

	if !t.Run("paging", func(t *testing.T) {
		b.t = t
		var fns, pms strings.Builder
		for i := range 60 {
			u := fmt.Sprintf("00000000-0000-4000-9000-%012x", i)
			fmt.Fprintf(&fns, `f%d: createFlowNetwork(input: {uuid: "%s", name: "page-net-%d", cidr: "198.19.%d.0/30"}) { uuid } `, i, u, i, i)
			fmt.Fprintf(&pms, `p%d: createPortMirror(input: {name: "paged-%02d", flowNetworkUuid: "%s"}) { uuid } `, i, i, u)
		}
		d.gql(adminToken, "mutation { "+fns.String()+"}", nil)
		d.gql(adminToken, "mutation { "+pms.String()+"}", nil)
		b.find(b.find(nil, "navigation", "Main"), "link", "Port Mirroring").click()
		pager := b.find(nil, "group", "Pages of port mirrors")
		b.eventually("the first page of 61", func() error {
			if txt := pager.text(); !strings.Contains(txt, "1–50 of 61") {
				return fmt.Errorf("pager %q", txt)
			}
			return nil
		})
		b.find(nil, "button", "Next page").click()
		b.find(b.find(nil, "table", "Port Mirrors"), "link", "paged-59")
		if txt := pager.text(); !strings.Contains(txt, "51–61 of 61") || !b.find(nil, "button", "Next page").disabled() {
			t.Errorf("the last page: %q", txt)
		}
		b.find(nil, "button", "Previous page").click()
		b.find(b.find(nil, "table", "Port Mirrors"), "link", "existing")
		b.find(nil, "textbox", "Filter by name").fill("paged-5")
		b.eventually("the filtered list on one page", func() error {
			if txt := pager.text(); !strings.Contains(txt, "1–10 of 10") {
				return fmt.Errorf("pager %q", txt)
			}
			return nil
		})
		b.axe("Port Mirroring, paged")
		b.screenshot("11-port-mirroring-filtered")
	}) {
		return
	}

	b.t = t
	b.checkClean()
}
