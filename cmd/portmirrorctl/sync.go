package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// Chunks of inventory sync: each is one bulk call (at most 2,000 entries, and a body under the API's 1 MiB).
const (
	syncHostChunk = 2000
	syncVMChunk   = 1000
)

// syncCmd is `inventory sync FILE`: the hosts and VMs of a JSON file, registered or updated with the bulk
// mutations.
func (a *app) syncCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "sync FILE",
		Short: "Register or update many hosts and VMs from a JSON file (- for stdin) with the bulk mutations",
		Long: `The file holds {"hosts": [HostInput...], "vmInstances": [VmInstanceInput...]}, the fields of registerHost and
createVmInstance. Entries with a uuid are created or updated (upsert); hosts go first, 2,000 per call, then VMs,
1,000 per call. Each call is atomic: a refused entry refuses its call (named by its index in the call), and the
calls before it stay done.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var r io.Reader = os.Stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return &usageError{err.Error()}
				}
				defer f.Close()
				r = f
			}
			var in struct {
				Hosts       []map[string]any `json:"hosts"`
				VmInstances []map[string]any `json:"vmInstances"`
			}
			dec := json.NewDecoder(r)
			dec.UseNumber()
			if err := dec.Decode(&in); err != nil {
				return &usageError{fmt.Sprintf("%s: %v", args[0], err)}
			}
			type result struct {
				Count     int `json:"count"`
				Created   int `json:"created"`
				Updated   int `json:"updated"`
				Unchanged int `json:"unchanged"`
			}
			var hosts, vms result
			add := func(t *result, r result) {
				t.Count, t.Created, t.Updated, t.Unchanged = t.Count+r.Count, t.Created+r.Created, t.Updated+r.Updated, t.Unchanged+r.Unchanged
			}
			for lo := 0; lo < len(in.Hosts); lo += syncHostChunk {
				var out struct {
					R result `json:"registerHosts"`
				}
				chunk := in.Hosts[lo:min(len(in.Hosts), lo+syncHostChunk)]
				if err := a.query(c, `mutation($in: [HostInput!]!) { registerHosts(input: $in) { count created updated unchanged } }`,
					map[string]any{"in": chunk}, &out); err != nil {
					return fmt.Errorf("hosts %d to %d: %w", lo, lo+len(chunk)-1, err)
				}
				add(&hosts, out.R)
			}
			for lo := 0; lo < len(in.VmInstances); lo += syncVMChunk {
				var out struct {
					R result `json:"createVmInstances"`
				}
				chunk := in.VmInstances[lo:min(len(in.VmInstances), lo+syncVMChunk)]
				if err := a.query(c, `mutation($in: [VmInstanceInput!]!) { createVmInstances(input: $in) { count created updated unchanged } }`,
					map[string]any{"in": chunk}, &out); err != nil {
					return fmt.Errorf("VM instances %d to %d: %w", lo, lo+len(chunk)-1, err)
				}
				add(&vms, out.R)
			}
			return a.show(map[string]result{"hosts": hosts, "vmInstances": vms}, func(w *tabwriter.Writer) {
				row(w, "KIND", "COUNT", "CREATED", "UPDATED", "UNCHANGED")
				row(w, "hosts", hosts.Count, hosts.Created, hosts.Updated, hosts.Unchanged)
				row(w, "vmInstances", vms.Count, vms.Created, vms.Updated, vms.Unchanged)
			})
		},
	}
}
