package ovsdbhost

// addErspanOptions makes an erspan port take every ERSPAN header field from the flow that outputs to it: one
// port per local_ip serves both versions (OVS refuses a second erspan port with the same local_ip and flow-based
// remote and key), and a fixed option would override what the compiler sets (ovs-3.1-mirroring-facts.md, 3).
func addErspanOptions(o map[string]string) {
	for _, k := range []string{"erspan_ver", "erspan_idx", "erspan_dir", "erspan_hwid"} {
		o[k] = "flow"
	}
}
