package fleet

import (
	"slices"

	"portmirror/simulator/dataplane"
)

// SelectedBy is the rule of API.md for one frame and one session, as Expect applies it: whether the session
// selects the frame (and so counts it once in its counters).
func (f *Fleet) SelectedBy(fr Frame, s Session) bool {
	if !s.Enabled {
		return false
	}
	h := f.HostOf(s.Source.VM)
	if s.Direction.CopiesEgress() && s.Source == fr.From {
		return s.Selects(fr.Raw)
	}
	if !s.Direction.CopiesIngress() || s.Source == fr.From {
		return false
	}
	var dst dataplane.MAC
	copy(dst[:], fr.Raw[:6])
	if dst != s.Source.MAC && !dst.IsMulticast() {
		return false
	}
	if h != f.HostOf(fr.From.VM) && !slices.Contains(f.underlayTargets(fr.Raw, f.HostOf(fr.From.VM)), h) {
		return false
	}
	return s.Selects(fr.Raw)
}
