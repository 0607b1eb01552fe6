package ovstest

import "strings"

// DatapathActions returns the last "Datapath actions:" line of an ovs-appctl ofproto/trace output, without its
// prefix (split it with flows.SplitActions); ok is false when the trace has no such line.
func DatapathActions(trace string) (line string, ok bool) {
	const prefix = "Datapath actions: "
	i := strings.LastIndex(trace, prefix)
	if i < 0 {
		return "", false
	}
	line, _, _ = strings.Cut(trace[i+len(prefix):], "\n")
	return line, true
}
