package ovstest

import "strings"

// DatapathActions returns the actions of the last "Datapath actions:" line of an ovs-appctl ofproto/trace output,
// split at the commas outside parentheses (so "clone(tnl_push(...),3),1" is two actions); ok is false when the
// trace has no such line.
func DatapathActions(trace string) (acts []string, ok bool) {
	const prefix = "Datapath actions: "
	i := strings.LastIndex(trace, prefix)
	if i < 0 {
		return nil, false
	}
	line, _, _ := strings.Cut(trace[i+len(prefix):], "\n")
	depth, start := 0, 0
	for j, c := range line {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				acts = append(acts, strings.TrimSpace(line[start:j]))
				start = j + 1
			}
		}
	}
	return append(acts, strings.TrimSpace(line[start:])), true
}
