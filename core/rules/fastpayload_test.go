package rules

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/tributary/tributary/core"
)

// fuzzPayloadExprs are the payload expressions FuzzFastPayloadAgreesWithVM
// runs on every payload.
var fuzzPayloadExprs = []string{
	`payload.a`, `payload.a.b`, `payload.a.b.c`, `payload["a"]["b"]`, `len(payload.a)`, `len(payload.a.b)`,
	`payload.a == "x"`, `payload.a.b != "x"`, `"p/" + payload.a.b`, `string(payload.a)`, `toString(payload.a.b)`,
	`payload.a && payload.b`, `!payload.a`, `payload.a || op == "message"`, `payload.a + payload.b`,
}

// FuzzFastPayloadAgreesWithVM checks, on payloads decoded from arbitrary
// JSON as the webhook adapter gives them (numbers as json.Number), that
// whenever the VM-free evaluator answers a payload expression, the VM gives
// the same value without an error.
func FuzzFastPayloadAgreesWithVM(f *testing.F) {
	for _, s := range []string{
		`{"a":{"b":"x","c":1},"b":true}`, `{"a":"x","b":"y"}`, `{"a":[1,2,{"b":3}]}`, `{"a":{"b":{"c":null}}}`,
		`{"a":true,"b":false}`, `{"a":{}}`, `"a"`, `[1]`, `null`, `{"a":{"b":"héllo"}}`, `{"a":"ü","b":1.5e3}`,
	} {
		f.Add([]byte(s))
	}
	progs := make([]*program, len(fuzzPayloadExprs))
	for i, code := range fuzzPayloadExprs {
		c := &compiler{idents: map[string]bool{}}
		if progs[i] = c.compile("x", code); progs[i] == nil {
			f.Fatalf("%s does not compile: %v", code, c.errs)
		}
		if progs[i].fast == nil {
			f.Fatalf("%s: no fast evaluation", code)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var payload any
		if dec.Decode(&payload) != nil {
			return
		}
		st := &state{}
		st.env.fill("hooks", &core.Change{Op: core.OpMessage, Payload: payload}, true)
		for i, p := range progs {
			want, err := st.vm.Run(p.prog, &st.env)
			if v, ok := p.fast.value(&st.env); ok {
				if err != nil {
					t.Errorf("%s on %s = %#v, the VM fails: %v", fuzzPayloadExprs[i], body, v, err)
				} else if !reflect.DeepEqual(v, want) {
					t.Errorf("%s on %s = %#v, the VM says %#v", fuzzPayloadExprs[i], body, v, want)
				}
			}
			if s, ok := p.fast.text(&st.env); ok && (err != nil || want != any(s)) {
				t.Errorf("%s on %s: text %q, the VM says %#v, %v", fuzzPayloadExprs[i], body, s, want, err)
			}
			if b, ok := p.fast.truth(&st.env); ok && (err != nil || want != any(b)) {
				t.Errorf("%s on %s: truth %v, the VM says %#v, %v", fuzzPayloadExprs[i], body, b, want, err)
			}
			got, err2 := p.run(st)
			if (err2 == nil) != (err == nil) || (err == nil && !reflect.DeepEqual(got, want)) {
				t.Errorf("%s on %s: run gives %#v, %v; the VM %#v, %v", fuzzPayloadExprs[i], body, got, err2, want, err)
			}
		}
	})
}
