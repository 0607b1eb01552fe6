package flows

import "slices"

// Diff returns what turns the installed flows into the desired ones, each list sorted canonically:
// add the desired flows whose key is not installed, or is installed with another cookie (an OpenFlow 1.3 ADD
// replaces the flow of the same match and priority, cookie included, where a modify never changes a cookie);
// modify (strict) those whose key is installed with the same cookie and other actions; delete (strict) the
// installed flows whose key is not desired. Identical flows need
// nothing, so diffing a bridge against what it already holds yields three empty lists. When a list holds two
// flows with one key, the first wins.
func Diff(desired, installed []Flow) (add, modify, del []Flow) {
	if sameFlows(desired, installed) {
		return nil, nil, nil // a bridge read back after a reconnect holds what it should: no maps to build
	}
	return diff(desired, installed, slices.IsSortedFunc(desired, CompareFlows))
}

// diff is Diff; sorted says desired is in CompareFlows order (as CompileBridge returns it), where flows of one key
// are next to each other: no set of the desired keys is built to find duplicates (at 115k flows that set was most
// of a diff's time).
func diff(desired, installed []Flow, sorted bool) (add, modify, del []Flow) {
	have := make(map[Key]int, len(installed))
	for i, f := range installed {
		if _, dup := have[f.Key()]; !dup {
			have[f.Key()] = i
		}
	}
	kept := make([]bool, len(installed)) // by have's index: the key is desired
	var want map[Key]struct{}
	if !sorted {
		want = make(map[Key]struct{}, len(desired))
	}
	// At least len(desired)-len(installed) flows are added (a first programming, a bulk enable: nearly all of
	// them): one allocation, not a growing slice copied again and again (~1 s of a profile over six 100k–240k-flow
	// bulk rounds); a bridge that holds what it should allocates nothing.
	if n := len(desired) - len(installed); n > 0 {
		add = make([]Flow, 0, n)
	}
	for j, f := range desired {
		k := f.Key()
		if sorted {
			if j > 0 && desired[j-1].Key() == k {
				continue
			}
		} else {
			if _, dup := want[k]; dup {
				continue
			}
			want[k] = struct{}{}
		}
		i, ok := have[k]
		if ok {
			kept[i] = true
		}
		switch {
		case !ok || installed[i].Cookie != f.Cookie:
			add = append(add, f)
		case !slices.Equal(installed[i].Actions, f.Actions) || installed[i].Meter != f.Meter:
			modify = append(modify, f)
		}
	}
	for _, i := range have {
		if !kept[i] {
			del = append(del, installed[i])
		}
	}
	slices.SortFunc(add, CompareFlows)
	slices.SortFunc(modify, CompareFlows)
	slices.SortFunc(del, CompareFlows)
	return add, modify, del
}

// sameFlows reports whether installed holds exactly the flows of desired (a canonically sorted list), in any
// order: the same keys, cookies, meters and actions, one each. It answers false when unsure (duplicates, a list
// out of order in desired), which only sends Diff the long way.
func sameFlows(desired, installed []Flow) bool {
	if len(desired) != len(installed) {
		return false
	}
	if !slices.IsSortedFunc(installed, CompareFlows) {
		installed = slices.Clone(installed)
		slices.SortFunc(installed, CompareFlows)
	}
	for i := range desired {
		if !desired[i].Equal(&installed[i]) {
			return false
		}
		if i > 0 && CompareFlows(desired[i-1], desired[i]) >= 0 {
			return false
		}
	}
	return true
}
