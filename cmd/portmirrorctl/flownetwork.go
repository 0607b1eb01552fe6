package main

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"portmirror/model"
)

// flowNetworkCreateCmd is "flow-network create": a flow network with its CIDR, encapsulation and clusters.
func (a *app) flowNetworkCreateCmd() *cobra.Command {
	var name, description, cidr, encap string
	var clusters []string
	encs := make([]string, 0, 4)
	for _, e := range model.Encapsulations() {
		encs = append(encs, string(e))
	}
	create := &cobra.Command{
		Use:   "create --name NAME --cidr CIDR [--encapsulation " + strings.Join(encs, "|") + "] [--description TEXT] [--cluster UUID]...",
		Short: "Create a flow network and attach it to clusters",
		Long: "Create a flow network: a network dedicated to carrying copies between hosts, one tunnel endpoint IP per " +
			"host taken from --cidr. --encapsulation is GRE (the default), VXLAN, ERSPAN_V1 (ERSPAN type II) or " +
			"ERSPAN_V2 (type III); ERSPAN carries at most 1023 destinations (the 10-bit session id), and a cluster " +
			"cannot carry a GRE and an ERSPAN flow network at once. Each --cluster attaches it to a cluster.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			in := map[string]any{"name": name, "cidr": cidr}
			if c.Flags().Changed("encapsulation") {
				e := strings.ToUpper(encap)
				if !slices.Contains(encs, e) {
					return &usageError{fmt.Sprintf("--encapsulation %q: want one of %s", encap, strings.Join(encs, ", "))}
				}
				in["encapsulation"] = e
			}
			if c.Flags().Changed("description") {
				in["description"] = description
			}
			if len(clusters) > 0 {
				cs := make([]any, len(clusters))
				for i, x := range clusters {
					cs[i] = x
				}
				in["clusterUuids"] = cs
			}
			var out struct {
				CreateFlowNetwork struct {
					UUID          string `json:"uuid"`
					Name          string `json:"name"`
					CIDR          string `json:"cidr"`
					Encapsulation string `json:"encapsulation"`
					Clusters      []struct {
						Name string `json:"name"`
					} `json:"clusters"`
				} `json:"createFlowNetwork"`
			}
			if err := a.query(c, `mutation($in: FlowNetworkInput!) { createFlowNetwork(input: $in) { uuid name cidr encapsulation clusters { name } } }`,
				map[string]any{"in": in}, &out); err != nil {
				return err
			}
			f := out.CreateFlowNetwork
			return a.show(f, func(w *tabwriter.Writer) {
				row(w, "UUID", "NAME", "CIDR", "ENCAPSULATION", "CLUSTERS")
				var cls []string
				for _, c := range f.Clusters {
					cls = append(cls, c.Name)
				}
				row(w, f.UUID, f.Name, f.CIDR, f.Encapsulation, strings.Join(cls, ","))
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "the flow network's name")
	create.Flags().StringVar(&cidr, "cidr", "", "the CIDR its endpoint IPs are allocated from")
	create.Flags().StringVar(&encap, "encapsulation", "GRE", strings.Join(encs, ", "))
	create.Flags().StringVar(&description, "description", "", "a description")
	create.Flags().StringArrayVar(&clusters, "cluster", nil, "attach to this cluster (uuid); repeat for several")
	_ = create.MarkFlagRequired("name")
	_ = create.MarkFlagRequired("cidr")
	_ = create.RegisterFlagCompletionFunc("encapsulation", cobra.FixedCompletions(encs, cobra.ShellCompDirectiveNoFileComp))
	return create
}
