package store

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"portmirror/model"
)

// decodeSlow is how a stored value was read before splitEnvelope: encoding/json throughout.
func decodeSlow(kind string, raw []byte) (uint64, any, error) {
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return 0, nil, err
	}
	obj, err := decodeObject(kind, env.Obj)
	return env.Seq, obj, err
}

// Every stored value reads as encoding/json reads it: the same sequence number and object, or an error for both.
func TestDecodeValueMatchesEncodingJSON(t *testing.T) {
	host := model.Host{UUID: "h-1", Name: `tricky "}" name {`, ClusterUUID: "c", Bridge: "br-int", CreatedAt: time.Unix(1700000000, 5).UTC()}
	obj, err := json.Marshal(host)
	if err != nil {
		t.Fatal(err)
	}
	marshal := func(seq uint64) string {
		b, err := json.Marshal(envelope{Seq: seq, Obj: obj})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	o := string(obj)
	for _, seq := range []uint64{0, 42, math.MaxUint64} { // what the store writes is split, not scanned twice
		if env, ok := splitEnvelope([]byte(marshal(seq))); !ok || env.Seq != seq || string(env.Obj) != o {
			t.Errorf("seq %d: split %v into %d %s", seq, ok, env.Seq, env.Obj)
		}
	}
	cases := []string{
		marshal(0), marshal(1), marshal(42), marshal(math.MaxUint64),
		`{"seq":7,"obj":` + o + `,"extra":{"a":1}}`, // a field after obj: not the end of the object
		`{"seq":7,"obj":` + o + `,"x":"}"}`,
		`{"obj":` + o + `,"seq":9}`, // other order
		`{ "seq": 3, "obj": ` + o + ` }`,
		`{"seq":07,"obj":` + o + `}`,                   // a leading zero: not JSON
		`{"seq":18446744073709551616,"obj":` + o + `}`, // overflows
		`{"seq":5,"obj":{"uuid":"h-2"}`,                // cut short
		`{"seq":5,"obj":{}}`,
		`{"seq":5,"obj":{"uuid":1}}`, // wrong type
		`{"seq":5,"obj":null}`,
		`{"seq":5,"obj":` + o + `}}`,
		``, `{}`, `null`,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	base := marshal(123456)
	for range 300 { // damaged copies of a good value
		b := []byte(base)
		switch rng.IntN(3) {
		case 0:
			b[rng.IntN(len(b))] = "{}\",:0a "[rng.IntN(8)]
		case 1:
			b = b[:rng.IntN(len(b))]
		default:
			i := rng.IntN(len(b))
			b = append(b[:i:i], b[i+1:]...)
		}
		cases = append(cases, string(b))
	}
	for _, raw := range cases {
		items := []loadItem{{key: "k", kind: KindHost, raw: []byte(raw)}}
		gotErr := decodeItems(items)
		seq, want, wantErr := decodeSlow(KindHost, []byte(raw))
		if (gotErr != nil) != (wantErr != nil) {
			t.Errorf("%s: error %v, encoding/json says %v", raw, gotErr, wantErr)
			continue
		}
		if gotErr == nil && (items[0].seq != seq || !reflect.DeepEqual(items[0].obj, want)) {
			t.Errorf("%s: read seq %d %+v, encoding/json reads seq %d %+v", raw, items[0].seq, items[0].obj, seq, want)
		}
	}
}
