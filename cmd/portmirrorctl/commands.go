package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// app holds the global flags and the output streams of one invocation.
type app struct {
	conn   connOptions
	output string
	stdout io.Writer
	stderr io.Writer
}

const exitHelp = `Exit status:
  0  done
  1  another failure (an answer that is not the API's)
  2  the command line is wrong
  3  the API could not be reached (connection, TLS, timeout)
  4  not authenticated or not allowed (UNAUTHENTICATED, FORBIDDEN)
  5  not found (NOT_FOUND)
  6  refused (VALIDATION, CONFLICT; the message names the rule; also an operation this API does not have)
  7  the API failed (INTERNAL, UNAVAILABLE, or an error without a code)
The API's error messages are printed as they are, after their code and rule.`

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "portmirrorctl",
		Short: "Manage port mirroring through the portmirrord API",
		Long: "portmirrorctl drives portmirrord's GraphQL API: port mirrors and their sessions, the audit trail, " +
			"switches, the inventory and flow networks.\n\nThe API is --api, else $" + envAPI + ", else http://127.0.0.1:8080. " +
			"The token is --token, else --token-file, else $" + envToken + ", else the file named by $" + envTokenFile +
			" (none: the daemon serves loopback clients without a token when it has none configured).\n\n" + exitHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if a.output != "table" && a.output != "json" {
				return &usageError{fmt.Sprintf("-o %q: want table or json", a.output)}
			}
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&a.conn.api, "api", "", "the API's URL, e.g. https://192.0.2.1:8080 (default $"+envAPI+" or http://127.0.0.1:8080)")
	pf.StringVar(&a.conn.token, "token", "", "the bearer token (default $"+envToken+")")
	pf.StringVar(&a.conn.tokenFile, "token-file", "", "a file holding the bearer token (default $"+envTokenFile+")")
	pf.StringVar(&a.conn.caCert, "ca-cert", "", "PEM file of the CA that signed the API's certificate (default: the system's)")
	pf.StringVar(&a.conn.cert, "cert", "", "PEM client certificate, for a daemon with --api-tls-client-ca")
	pf.StringVar(&a.conn.key, "key", "", "PEM private key of --cert")
	pf.DurationVar(&a.conn.timeout, "timeout", 30*time.Second, "give up on a request after this long")
	pf.StringVarP(&a.output, "output", "o", "table", "table (for people) or json (for scripts)")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))

	root.AddCommand(group(a.mirrorCmd()), group(a.sessionCmd()), a.auditCmd(), group(a.switchCmd()), group(a.inventoryCmd()), group(a.flowNetworkCmd()))
	return root
}

// group makes a command that only holds subcommands refuse to run alone or with an unknown subcommand.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return &usageError{fmt.Sprintf("unknown command %q for %q; see %s --help", args[0], c.CommandPath(), c.CommandPath())}
		}
		return nil
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		return &usageError{fmt.Sprintf("%s needs a subcommand; see %s --help", c.CommandPath(), c.CommandPath())}
	}
	return cmd
}

// isCobraUsage reports whether err is cobra's complaint about the command line.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires ", "invalid argument", "flag needs", "required flag", "if any flags in the group"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// query runs a document with the global connection flags.
func (a *app) query(cmd *cobra.Command, doc string, vars map[string]any, out any) error {
	c, err := newClient(a.conn)
	if err != nil {
		return err
	}
	return c.do(cmd.Context(), doc, vars, out)
}

// show prints v as JSON with -o json, or calls table otherwise.
func (a *app) show(v any, table func(w *tabwriter.Writer)) error {
	if a.output == "json" {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	table(w)
	return w.Flush()
}

func row(w io.Writer, cols ...any) {
	for i, c := range cols {
		if i > 0 {
			fmt.Fprint(w, "\t")
		}
		switch v := c.(type) {
		case nil:
			fmt.Fprint(w, "-")
		case *string:
			if v == nil || *v == "" {
				fmt.Fprint(w, "-")
			} else {
				fmt.Fprint(w, *v)
			}
		case string:
			if v == "" {
				fmt.Fprint(w, "-")
			} else {
				fmt.Fprint(w, v)
			}
		default:
			fmt.Fprint(w, v)
		}
	}
	fmt.Fprintln(w)
}

// Shapes of the API's answers.
type (
	nicRef struct {
		UUID       string `json:"uuid"`
		MAC        string `json:"mac,omitempty"`
		VmInstance *struct {
			Name string `json:"name"`
		} `json:"vmInstance,omitempty"`
	}
	session struct {
		UUID           string  `json:"uuid"`
		Name           string  `json:"name"`
		Type           string  `json:"type"`
		TunnelKey      int     `json:"tunnelKey"`
		Status         string  `json:"status"`
		StatusReason   *string `json:"statusReason"`
		SourceNic      nicRef  `json:"sourceNic"`
		DestinationNic nicRef  `json:"destinationNic"`
		CreatedAt      string  `json:"createdAt"`
		ExpiresAt      *string `json:"expiresAt"`
	}
	portMirror struct {
		UUID        string  `json:"uuid"`
		Name        string  `json:"name"`
		Description *string `json:"description"`
		State       string  `json:"state"`
		FlowNetwork struct {
			UUID string `json:"uuid"`
			Name string `json:"name"`
		} `json:"flowNetwork"`
		Sessions  []session `json:"sessions"`
		CreatedAt string    `json:"createdAt"`
		UpdatedAt string    `json:"updatedAt"`
	}
)

const sessionFields = `uuid name type tunnelKey status statusReason createdAt expiresAt
  sourceNic { uuid mac vmInstance { name } } destinationNic { uuid mac vmInstance { name } }`
const mirrorFields = `uuid name description state flowNetwork { uuid name } createdAt updatedAt sessions { ` + sessionFields + ` }`

func nicLabel(n nicRef) string {
	if n.VmInstance != nil {
		return n.VmInstance.Name + "/" + n.UUID
	}
	return n.UUID
}

func (a *app) mirrorTable(pms []portMirror) error {
	return a.show(pms, func(w *tabwriter.Writer) {
		row(w, "UUID", "NAME", "STATE", "FLOW NETWORK", "SESSIONS", "ACTIVE", "DESCRIPTION")
		for _, pm := range pms {
			active := 0
			for _, s := range pm.Sessions {
				if s.Status == "ACTIVE" {
					active++
				}
			}
			row(w, pm.UUID, pm.Name, pm.State, pm.FlowNetwork.Name, len(pm.Sessions), active, pm.Description)
		}
	})
}

func (a *app) sessionTable(ss []session) error {
	return a.show(ss, func(w *tabwriter.Writer) {
		row(w, "UUID", "NAME", "TYPE", "SOURCE NIC", "DESTINATION NIC", "KEY", "STATUS", "REASON", "EXPIRES")
		for _, s := range ss {
			row(w, s.UUID, s.Name, s.Type, nicLabel(s.SourceNic), nicLabel(s.DestinationNic), s.TunnelKey, s.Status, s.StatusReason, s.ExpiresAt)
		}
	})
}

// uuidArgs completes port mirror uuids from the API.
func (a *app) completeMirrors(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out struct {
		PortMirrors []portMirror `json:"portMirrors"`
	}
	if err := a.query(cmd, `{ portMirrors { uuid name } }`, nil, &out); err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var c []string
	for _, pm := range out.PortMirrors {
		c = append(c, pm.UUID+"\t"+pm.Name)
	}
	return c, cobra.ShellCompDirectiveNoFileComp
}

func (a *app) mirrorCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "mirror", Aliases: []string{"mirrors", "port-mirror"}, Short: "Port mirrors: list, show, create, rename, enable, disable, delete"}

	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List the port mirrors", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var out struct {
				PortMirrors []portMirror `json:"portMirrors"`
			}
			if err := a.query(c, `{ portMirrors { `+mirrorFields+` } }`, nil, &out); err != nil {
				return err
			}
			return a.mirrorTable(out.PortMirrors)
		},
	})

	cmd.AddCommand(&cobra.Command{
		Use: "show UUID", Short: "Show a port mirror and its sessions", Args: cobra.ExactArgs(1),
		ValidArgsFunction: a.completeMirrors,
		RunE: func(c *cobra.Command, args []string) error {
			var out struct {
				PortMirror *portMirror `json:"portMirror"`
			}
			if err := a.query(c, `query($u: ID!) { portMirror(uuid: $u) { `+mirrorFields+` } }`, map[string]any{"u": args[0]}, &out); err != nil {
				return err
			}
			if out.PortMirror == nil {
				return &notFoundError{"port mirror", args[0]}
			}
			if a.output == "json" {
				return a.show(out.PortMirror, nil)
			}
			pm := out.PortMirror
			if err := a.mirrorTable([]portMirror{*pm}); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout)
			return a.sessionTable(pm.Sessions)
		},
	})

	var name, description, flowNetwork string
	var enable bool
	var sessions []string
	create := &cobra.Command{
		Use:   "create --name NAME --flow-network UUID [--description TEXT] [--enable] [--session name=N,type=T,source=NIC,destination=NIC]...",
		Short: "Create a port mirror on a flow network, enabled and with sessions at once if asked",
		Long: "Create a port mirror. --enable enables it immediately after creation (copies may then use physical " +
			"network bandwidth); each --session adds a session immediately after creation (all or none are created). " +
			"A session's type is INGRESS, EGRESS or BIDIRECTION; source and destination are VM NIC uuids, and the " +
			"destination may not be its VM's default NIC.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			in := map[string]any{"name": name, "flowNetworkUuid": flowNetwork, "enable": enable}
			if c.Flags().Changed("description") {
				in["description"] = description
			}
			var ss []any
			for _, s := range sessions {
				si, err := parseSession(s)
				if err != nil {
					return err
				}
				ss = append(ss, si)
			}
			if len(ss) > 0 {
				in["sessions"] = ss
			}
			var out struct {
				CreatePortMirror portMirror `json:"createPortMirror"`
			}
			if err := a.query(c, `mutation($in: PortMirrorInput!) { createPortMirror(input: $in) { `+mirrorFields+` } }`, map[string]any{"in": in}, &out); err != nil {
				return err
			}
			return a.mirrorTable([]portMirror{out.CreatePortMirror})
		},
	}
	create.Flags().StringVar(&name, "name", "", "the port mirror's name")
	create.Flags().StringVar(&description, "description", "", "a description")
	create.Flags().StringVar(&flowNetwork, "flow-network", "", "uuid of the flow network it occupies")
	create.Flags().BoolVar(&enable, "enable", false, "enable immediately after creation")
	create.Flags().StringArrayVar(&sessions, "session", nil, "add a session immediately after creation: name=N,type=INGRESS|EGRESS|BIDIRECTION,source=NIC-UUID,destination=NIC-UUID")
	_ = create.MarkFlagRequired("name")
	_ = create.MarkFlagRequired("flow-network")
	cmd.AddCommand(create)

	var newName, newDescription string
	rename := &cobra.Command{
		Use: "rename UUID [--name NAME] [--description TEXT]", Short: "Change the name and description of a port mirror",
		Args: cobra.ExactArgs(1), ValidArgsFunction: a.completeMirrors,
		RunE: func(c *cobra.Command, args []string) error {
			vars := map[string]any{"u": args[0]}
			if c.Flags().Changed("name") {
				vars["n"] = newName
			}
			if c.Flags().Changed("description") {
				vars["d"] = newDescription
			}
			if len(vars) == 1 {
				return &usageError{"give --name, --description or both"}
			}
			var out struct {
				UpdatePortMirror portMirror `json:"updatePortMirror"`
			}
			if err := a.query(c, `mutation($u: ID!, $n: String, $d: String) { updatePortMirror(uuid: $u, name: $n, description: $d) { `+mirrorFields+` } }`, vars, &out); err != nil {
				return err
			}
			return a.mirrorTable([]portMirror{out.UpdatePortMirror})
		},
	}
	rename.Flags().StringVar(&newName, "name", "", "the new name")
	rename.Flags().StringVar(&newDescription, "description", "", "the new description")
	cmd.AddCommand(rename)

	for _, op := range []struct{ use, short, mutation string }{
		{"enable", "Enable a port mirror: its sessions start copying", "enablePortMirror"},
		{"disable", "Disable a port mirror: its sessions stop copying and stay", "disablePortMirror"},
	} {
		cmd.AddCommand(&cobra.Command{
			Use: op.use + " UUID", Short: op.short, Args: cobra.ExactArgs(1), ValidArgsFunction: a.completeMirrors,
			RunE: func(c *cobra.Command, args []string) error {
				var out map[string]portMirror
				if err := a.query(c, `mutation($u: ID!) { `+op.mutation+`(uuid: $u) { `+mirrorFields+` } }`, map[string]any{"u": args[0]}, &out); err != nil {
					return err
				}
				return a.mirrorTable([]portMirror{out[op.mutation]})
			},
		})
	}

	cmd.AddCommand(&cobra.Command{
		Use: "delete UUID", Short: "Delete a port mirror, its sessions and every flow they installed", Args: cobra.ExactArgs(1),
		ValidArgsFunction: a.completeMirrors,
		RunE: func(c *cobra.Command, args []string) error {
			var out struct {
				DeletePortMirror string `json:"deletePortMirror"`
			}
			if err := a.query(c, `mutation($u: ID!) { deletePortMirror(uuid: $u) }`, map[string]any{"u": args[0]}, &out); err != nil {
				return err
			}
			return a.deleted(out.DeletePortMirror)
		},
	})
	return cmd
}

func (a *app) deleted(uuid string) error {
	if a.output == "json" {
		return a.show(map[string]string{"deleted": uuid}, nil)
	}
	fmt.Fprintf(a.stdout, "deleted %s\n", uuid)
	return nil
}

// parseSession reads name=N,type=T,source=NIC,destination=NIC[,expires-at=RFC3339|,expires-in=DURATION].
func parseSession(s string) (map[string]any, error) {
	in := map[string]any{}
	keys := map[string]string{"name": "name", "type": "type", "source": "sourceNicUuid", "destination": "destinationNicUuid",
		"expires-at": "expiresAt", "expires-in": "expiresAt"}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		field, known := keys[k]
		if !ok || !known {
			return nil, &usageError{fmt.Sprintf("--session %q: want name=N,type=INGRESS|EGRESS|BIDIRECTION,source=NIC-UUID,destination=NIC-UUID[,expires-at=RFC3339|,expires-in=DURATION]", s)}
		}
		switch k {
		case "type":
			v = strings.ToUpper(v)
		case "expires-in":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, &usageError{fmt.Sprintf("--session %q: expires-in=%s is not a positive duration such as 30m or 2h", s, v)}
			}
			v = time.Now().Add(d).UTC().Format(time.RFC3339)
		}
		if _, twice := in[field]; twice && field == "expiresAt" {
			return nil, &usageError{fmt.Sprintf("--session %q: give expires-at or expires-in, not both", s)}
		}
		in[field] = v
	}
	for _, k := range []string{"name", "type", "source", "destination"} {
		if _, ok := in[keys[k]]; !ok {
			return nil, &usageError{fmt.Sprintf("--session %q: %s= is missing", s, k)}
		}
	}
	return in, nil
}

func (a *app) sessionCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "session", Aliases: []string{"sessions"}, Short: "Sessions of a port mirror: add, delete, update, probe"}

	var name, typ, source, destination, addExpiresAt string
	var addExpiresIn time.Duration
	add := &cobra.Command{
		Use:   "add MIRROR-UUID --name NAME --type INGRESS|EGRESS|BIDIRECTION --source NIC-UUID --destination NIC-UUID [--expires-at RFC3339 | --expires-in DURATION]",
		Short: "Add a session to a port mirror",
		Long: "Add a session: a copy of the source NIC's traffic (INGRESS: received, EGRESS: sent, BIDIRECTION: both) " +
			"goes to the destination NIC. The destination may not be its VM's default NIC, and neither NIC may have QoS.",
		Args: cobra.ExactArgs(1), ValidArgsFunction: a.completeMirrors,
		RunE: func(c *cobra.Command, args []string) error {
			in := map[string]any{"name": name, "type": strings.ToUpper(typ), "sourceNicUuid": source, "destinationNicUuid": destination}
			if at, given, err := expiryFlags(c, addExpiresAt, addExpiresIn); err != nil {
				return err
			} else if given {
				in["expiresAt"] = at
			}
			var out struct {
				AddPortMirrorSession session `json:"addPortMirrorSession"`
			}
			if err := a.query(c, `mutation($pm: ID!, $in: SessionInput!) { addPortMirrorSession(portMirrorUuid: $pm, input: $in) { `+sessionFields+` } }`,
				map[string]any{"pm": args[0], "in": in}, &out); err != nil {
				return err
			}
			return a.sessionTable([]session{out.AddPortMirrorSession})
		},
	}
	add.Flags().StringVar(&name, "name", "", "the session's name")
	add.Flags().StringVar(&typ, "type", "", "INGRESS, EGRESS or BIDIRECTION")
	add.Flags().StringVar(&source, "source", "", "uuid of the VM NIC to watch")
	add.Flags().StringVar(&destination, "destination", "", "uuid of the VM NIC that receives the copies (not a default NIC)")
	add.Flags().StringVar(&addExpiresAt, "expires-at", "", "delete the session at this time (RFC 3339, e.g. 2026-12-31T18:00:00Z)")
	add.Flags().DurationVar(&addExpiresIn, "expires-in", 0, "delete the session this long from now (e.g. 30m, 2h)")
	add.MarkFlagsMutuallyExclusive("expires-at", "expires-in")
	for _, f := range []string{"name", "type", "source", "destination"} {
		_ = add.MarkFlagRequired(f)
	}
	_ = add.RegisterFlagCompletionFunc("type", cobra.FixedCompletions([]string{"INGRESS", "EGRESS", "BIDIRECTION"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.AddCommand(add)

	cmd.AddCommand(&cobra.Command{
		Use: "delete SESSION-UUID", Short: "Delete a session from its port mirror", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var out struct {
				DeletePortMirrorSession string `json:"deletePortMirrorSession"`
			}
			if err := a.query(c, `mutation($u: ID!) { deletePortMirrorSession(uuid: $u) }`, map[string]any{"u": args[0]}, &out); err != nil {
				return err
			}
			return a.deleted(out.DeletePortMirrorSession)
		},
	})

	var uName string
	var snap, limit int
	var expires string
	var expiresIn time.Duration
	var noExpiry bool
	update := &cobra.Command{
		Use:   "update SESSION-UUID [--name NAME] [--snap-length N] [--bandwidth-limit-kbps N] [--expires-at RFC3339 | --expires-in DURATION | --no-expiry]",
		Short: "Change a session (updatePortMirrorSession; a daemon without it answers with its error)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			in := map[string]any{}
			if c.Flags().Changed("name") {
				in["name"] = uName
			}
			if c.Flags().Changed("snap-length") {
				in["snapLength"] = snap
			}
			if c.Flags().Changed("bandwidth-limit-kbps") {
				in["bandwidthLimitKbps"] = limit
			}
			if at, given, err := expiryFlags(c, expires, expiresIn); err != nil {
				return err
			} else if given {
				in["expiresAt"] = at
			}
			if noExpiry {
				in["expiresAt"] = nil // an explicit null: the session no longer expires
			}
			if len(in) == 0 {
				return &usageError{"give at least one of --name, --snap-length, --bandwidth-limit-kbps, --expires-at, --expires-in, --no-expiry"}
			}
			var out struct {
				UpdatePortMirrorSession session `json:"updatePortMirrorSession"`
			}
			if err := a.query(c, `mutation($u: ID!, $in: SessionUpdateInput!) { updatePortMirrorSession(uuid: $u, input: $in) { `+sessionFields+` } }`,
				map[string]any{"u": args[0], "in": in}, &out); err != nil {
				return err
			}
			return a.sessionTable([]session{out.UpdatePortMirrorSession})
		},
	}
	update.Flags().StringVar(&uName, "name", "", "the new name")
	update.Flags().IntVar(&snap, "snap-length", 0, "cut copies to this many bytes (64..65535)")
	update.Flags().IntVar(&limit, "bandwidth-limit-kbps", 0, "drop copies beyond this rate")
	update.Flags().StringVar(&expires, "expires-at", "", "delete the session at this time (RFC 3339)")
	update.Flags().DurationVar(&expiresIn, "expires-in", 0, "delete the session this long from now (e.g. 30m, 2h)")
	update.Flags().BoolVar(&noExpiry, "no-expiry", false, "the session no longer expires")
	update.MarkFlagsMutuallyExclusive("expires-at", "expires-in", "no-expiry")
	cmd.AddCommand(update)

	cmd.AddCommand(&cobra.Command{
		Use:   "probe SESSION-UUID",
		Short: "Send a marked frame through a session and say whether its copy arrived (probePortMirrorSession)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var out struct {
				Probe struct {
					Delivered bool     `json:"delivered"`
					LatencyMs *float64 `json:"latencyMs"`
					Path      []string `json:"path"`
					Reason    *string  `json:"reason"`
				} `json:"probePortMirrorSession"`
			}
			if err := a.query(c, `mutation($u: ID!) { probePortMirrorSession(uuid: $u) { delivered latencyMs path reason } }`, map[string]any{"u": args[0]}, &out); err != nil {
				return err
			}
			p := out.Probe
			return a.show(p, func(w *tabwriter.Writer) {
				row(w, "DELIVERED", "LATENCY MS", "PATH", "REASON")
				lat := "-"
				if p.LatencyMs != nil {
					lat = fmt.Sprintf("%.2f", *p.LatencyMs)
				}
				row(w, p.Delivered, lat, strings.Join(p.Path, " → "), p.Reason)
			})
		},
	})
	return cmd
}

func (a *app) auditCmd() *cobra.Command {
	var resource, operation, since, until string
	var first int
	cmd := &cobra.Command{
		Use:   "audit [--resource UUID] [--operation NAME] [--since T] [--until T] [--first N]",
		Short: "The audit trail, newest first: who did what, when, and whether it succeeded",
		Long: "The audit trail, newest first. --resource gives the events about an object and what it holds (a port " +
			"mirror's sessions), as the product's Audit operation on a port mirror does.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			vars := map[string]any{"first": first}
			for k, v := range map[string]string{"r": resource, "op": operation, "since": since, "until": until} {
				if v != "" {
					vars[k] = v
				}
			}
			type event struct {
				ID           string  `json:"id"`
				Time         string  `json:"time"`
				Actor        string  `json:"actor"`
				Operation    string  `json:"operation"`
				ResourceType string  `json:"resourceType"`
				ResourceUUID *string `json:"resourceUuid"`
				Success      bool    `json:"success"`
				Error        *string `json:"error"`
				Detail       *string `json:"detail"`
			}
			var out struct {
				Audits []event `json:"audits"`
			}
			if err := a.query(c, `query($r: ID, $op: String, $since: Time, $until: Time, $first: Int) {
  audits(resourceUuid: $r, operation: $op, since: $since, until: $until, first: $first) {
    id time actor operation resourceType resourceUuid success error detail } }`, vars, &out); err != nil {
				return err
			}
			return a.show(out.Audits, func(w *tabwriter.Writer) {
				row(w, "TIME", "ACTOR", "OPERATION", "RESOURCE", "UUID", "RESULT", "ERROR")
				for _, e := range out.Audits {
					result := "ok"
					if !e.Success {
						result = "refused"
					}
					row(w, e.Time, e.Actor, e.Operation, e.ResourceType, e.ResourceUUID, result, e.Error)
				}
			})
		},
	}
	cmd.Flags().StringVar(&resource, "resource", "", "only events about this object (and what it holds)")
	cmd.Flags().StringVar(&operation, "operation", "", "only this operation, e.g. enablePortMirror")
	cmd.Flags().StringVar(&since, "since", "", "only events at or after this time (RFC 3339)")
	cmd.Flags().StringVar(&until, "until", "", "only events before this time (RFC 3339)")
	cmd.Flags().IntVar(&first, "first", 50, "at most this many events")
	_ = cmd.RegisterFlagCompletionFunc("resource", a.completeMirrors)
	return cmd
}

func (a *app) switchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "switch", Aliases: []string{"switches"}, Short: "The OVS bridges the controller knows"}
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List the switches: connected or expected, their host and installed flows", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			type sw struct {
				DatapathID string `json:"datapathId"`
				Host       *struct {
					Name string `json:"name"`
				} `json:"host"`
				Connected     bool    `json:"connected"`
				RemoteAddress *string `json:"remoteAddress"`
				ConnectedAt   *string `json:"connectedAt"`
				FlowCount     int     `json:"flowCount"`
				Ports         []struct {
					PortNo int    `json:"portNo"`
					Name   string `json:"name"`
					Up     bool   `json:"up"`
				} `json:"ports"`
			}
			var out struct {
				Switches []sw `json:"switches"`
			}
			if err := a.query(c, `{ switches { datapathId host { name } connected remoteAddress connectedAt flowCount ports { portNo name up } } }`, nil, &out); err != nil {
				return err
			}
			return a.show(out.Switches, func(w *tabwriter.Writer) {
				row(w, "DATAPATH ID", "HOST", "CONNECTED", "REMOTE", "SINCE", "PORTS", "FLOWS")
				for _, s := range out.Switches {
					host := "-"
					if s.Host != nil {
						host = s.Host.Name
					}
					row(w, s.DatapathID, host, s.Connected, s.RemoteAddress, s.ConnectedAt, len(s.Ports), s.FlowCount)
				}
			})
		},
	})
	return cmd
}

func (a *app) inventoryCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "inventory", Short: "Clusters, hosts, VMs and their NICs, as the cloud's tooling registered them"}
	cmd.AddCommand(a.syncCmd())
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "One row per VM NIC, with its VM, host and cluster: the uuids sessions take", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			type nic struct {
				UUID      string  `json:"uuid"`
				MAC       string  `json:"mac"`
				IP        *string `json:"ip"`
				IsDefault bool    `json:"isDefault"`
				Port      *struct {
					Name string `json:"name"`
				} `json:"port"`
			}
			type vm struct {
				UUID string `json:"uuid"`
				Name string `json:"name"`
				Nics []nic  `json:"nics"`
			}
			type host struct {
				UUID        string `json:"uuid"`
				Name        string `json:"name"`
				Connected   bool   `json:"connected"`
				VmInstances []vm   `json:"vmInstances"`
			}
			var out struct {
				Clusters []struct {
					UUID  string `json:"uuid"`
					Name  string `json:"name"`
					Hosts []host `json:"hosts"`
				} `json:"clusters"`
			}
			if err := a.query(c, `{ clusters { uuid name hosts { uuid name connected vmInstances { uuid name nics { uuid mac ip isDefault port { name } } } } } }`, nil, &out); err != nil {
				return err
			}
			return a.show(out.Clusters, func(w *tabwriter.Writer) {
				row(w, "CLUSTER", "HOST", "VM", "NIC UUID", "MAC", "IP", "DEFAULT", "PORT")
				for _, cl := range out.Clusters {
					for _, h := range cl.Hosts {
						if len(h.VmInstances) == 0 {
							row(w, cl.Name, h.Name, "-", "-", "-", "-", "-", "-")
						}
						for _, v := range h.VmInstances {
							for _, n := range v.Nics {
								port := "-"
								if n.Port != nil {
									port = n.Port.Name
								}
								row(w, cl.Name, h.Name, v.Name, n.UUID, n.MAC, n.IP, n.IsDefault, port)
							}
						}
					}
				}
			})
		},
	})
	return cmd
}

func (a *app) flowNetworkCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "flow-network", Aliases: []string{"flow-networks", "fn"}, Short: "Flow networks: the networks dedicated to carrying copies"}
	cmd.AddCommand(a.flowNetworkCreateCmd())
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List the flow networks, their clusters and the port mirror occupying each", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			type fn struct {
				UUID          string `json:"uuid"`
				Name          string `json:"name"`
				CIDR          string `json:"cidr"`
				Encapsulation string `json:"encapsulation"`
				Clusters      []struct {
					Name string `json:"name"`
				} `json:"clusters"`
				Endpoints []struct {
					IP string `json:"ip"`
				} `json:"endpoints"`
				PortMirror *struct {
					Name string `json:"name"`
				} `json:"portMirror"`
			}
			var out struct {
				FlowNetworks []fn `json:"flowNetworks"`
			}
			if err := a.query(c, `{ flowNetworks { uuid name cidr encapsulation clusters { name } endpoints { ip } portMirror { name } } }`, nil, &out); err != nil {
				return err
			}
			return a.show(out.FlowNetworks, func(w *tabwriter.Writer) {
				row(w, "UUID", "NAME", "CIDR", "ENCAPSULATION", "CLUSTERS", "ENDPOINTS", "PORT MIRROR")
				for _, f := range out.FlowNetworks {
					var cls []string
					for _, c := range f.Clusters {
						cls = append(cls, c.Name)
					}
					pm := "-"
					if f.PortMirror != nil {
						pm = f.PortMirror.Name
					}
					row(w, f.UUID, f.Name, f.CIDR, f.Encapsulation, strings.Join(cls, ","), len(f.Endpoints), pm)
				}
			})
		},
	})
	return cmd
}

// expiryFlags reads --expires-at (RFC 3339, passed on as given: the API refuses what is malformed or past) or
// --expires-in (a duration from now, sent as the UTC time it names); given is false when neither was.
func expiryFlags(c *cobra.Command, at string, in time.Duration) (string, bool, error) {
	switch {
	case c.Flags().Changed("expires-at"):
		return at, true, nil
	case c.Flags().Changed("expires-in"):
		if in <= 0 {
			return "", false, &usageError{fmt.Sprintf("--expires-in %v: give a positive duration, e.g. 30m or 2h", in)}
		}
		return time.Now().Add(in).UTC().Format(time.RFC3339), true, nil
	}
	return "", false, nil
}
