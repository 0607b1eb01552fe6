package ovsdbhost

// OVSDB (RFC 7047) values, operations and row decoding: the parts the go-openvswitch ovsdb package lacks.

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// uuidRef is a reference to an existing row: ["uuid", "..."].
type uuidRef string

func (u uuidRef) MarshalJSON() ([]byte, error) { return json.Marshal([2]string{"uuid", string(u)}) }

// namedRef is a reference to a row inserted earlier in the same transaction: ["named-uuid", "..."].
type namedRef string

func (u namedRef) MarshalJSON() ([]byte, error) {
	return json.Marshal([2]string{"named-uuid", string(u)})
}

// oset is an OVSDB set: ["set", [...]].
type oset []any

func (s oset) MarshalJSON() ([]byte, error) {
	elems := []any(s)
	if elems == nil {
		elems = []any{}
	}
	return json.Marshal([2]any{"set", elems})
}

// omap is an OVSDB string map: ["map", [[k, v], ...]], keys sorted so that transactions are deterministic.
type omap map[string]string

func (m omap) MarshalJSON() ([]byte, error) {
	pairs := make([][2]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		pairs = append(pairs, [2]string{k, m[k]})
	}
	return json.Marshal([2]any{"map", pairs})
}

// cond is a where-clause element: [column, function, value].
type cond [3]any

func eq(column string, value any) cond { return cond{column, "==", value} }

func where(c []cond) []cond {
	if c == nil {
		return []cond{}
	}
	return c
}

// mutation is [column, mutator, value].
type mutation [3]any

type opSelect struct {
	Table   string
	Where   []cond
	Columns []string
}

func (o opSelect) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Op      string   `json:"op"`
		Table   string   `json:"table"`
		Where   []cond   `json:"where"`
		Columns []string `json:"columns,omitempty"`
	}{"select", o.Table, where(o.Where), o.Columns})
}

type opInsert struct {
	Table    string
	Row      map[string]any
	UUIDName string
}

func (o opInsert) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Op       string         `json:"op"`
		Table    string         `json:"table"`
		Row      map[string]any `json:"row"`
		UUIDName string         `json:"uuid-name,omitempty"`
	}{"insert", o.Table, o.Row, o.UUIDName})
}

type opUpdate struct {
	Table string
	Where []cond
	Row   map[string]any
}

func (o opUpdate) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Op    string         `json:"op"`
		Table string         `json:"table"`
		Where []cond         `json:"where"`
		Row   map[string]any `json:"row"`
	}{"update", o.Table, where(o.Where), o.Row})
}

type opMutate struct {
	Table     string
	Where     []cond
	Mutations []mutation
}

func (o opMutate) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Op        string     `json:"op"`
		Table     string     `json:"table"`
		Where     []cond     `json:"where"`
		Mutations []mutation `json:"mutations"`
	}{"mutate", o.Table, where(o.Where), o.Mutations})
}

// opResult is one element of a transact reply.
type opResult struct {
	Rows    []row           `json:"rows"`
	UUID    json.RawMessage `json:"uuid"`
	Count   *int            `json:"count"`
	Error   string          `json:"error"`
	Details string          `json:"details"`
}

// row is a row of a select reply, column by column.
type row map[string]json.RawMessage

func (r row) str(col string) string {
	var s string
	if v, ok := r[col]; ok {
		if json.Unmarshal(v, &s) != nil {
			// An optional string is a set of zero or one string.
			if ss := r.strSet(col); len(ss) == 1 {
				return ss[0]
			}
			return ""
		}
	}
	return s
}

// atoms decodes a column that is an atom or ["set", [atoms]] into raw atoms.
func (r row) atoms(col string) []json.RawMessage {
	v, ok := r[col]
	if !ok {
		return nil
	}
	var pair []json.RawMessage
	if json.Unmarshal(v, &pair) == nil && len(pair) == 2 {
		var tag string
		if json.Unmarshal(pair[0], &tag) == nil && tag == "set" {
			var elems []json.RawMessage
			if json.Unmarshal(pair[1], &elems) == nil {
				return elems
			}
			return nil
		}
	}
	return []json.RawMessage{v}
}

func (r row) strSet(col string) []string {
	var out []string
	for _, a := range r.atoms(col) {
		var s string
		if json.Unmarshal(a, &s) == nil {
			out = append(out, s)
		}
	}
	return out
}

func (r row) intSet(col string) []int {
	var out []int
	for _, a := range r.atoms(col) {
		var n int
		if json.Unmarshal(a, &n) == nil {
			out = append(out, n)
		}
	}
	return out
}

func decodeUUID(a json.RawMessage) (string, bool) {
	var pair [2]string
	if json.Unmarshal(a, &pair) != nil || pair[0] != "uuid" {
		return "", false
	}
	return pair[1], true
}

func (r row) uuid(col string) string {
	u, _ := decodeUUID(r[col])
	return u
}

func (r row) uuidSet(col string) []string {
	var out []string
	for _, a := range r.atoms(col) {
		if u, ok := decodeUUID(a); ok {
			out = append(out, u)
		}
	}
	return out
}

func (r row) strMap(col string) map[string]string {
	out := map[string]string{}
	v, ok := r[col]
	if !ok {
		return out
	}
	var pair [2]json.RawMessage
	if json.Unmarshal(v, &pair) != nil {
		return out
	}
	var pairs [][2]any
	if json.Unmarshal(pair[1], &pairs) != nil {
		return out
	}
	for _, p := range pairs {
		k, _ := p[0].(string)
		out[k] = fmt.Sprint(p[1])
	}
	return out
}

// optInt returns an optional integer column (a set of zero or one integer) and whether it is set.
func (r row) optInt(col string) (int, bool) {
	s := r.intSet(col)
	if len(s) != 1 {
		return 0, false
	}
	return s[0], true
}

func optStr(s string) any {
	if s == "" {
		return oset{}
	}
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }
