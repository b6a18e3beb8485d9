package catalog

// Fields is a pre-check for the data of one event type when that data is
// always an object with the same keys, as a rule's data mapping builds it.
// It checks the values against the schema without the object being built:
// the per-key schemas are looked up once, when the Fields is made.
//
// Like the pre-check behind Validate, it answers only "certainly valid";
// anything else must be decided by Validate, on the object built.
type Fields struct {
	// props holds the schema of each key, nil for a key the schema leaves
	// unconstrained.
	props []*fastSchema
	// usable is false when the answer is never "certainly valid": the type
	// has no pre-check, or the keys alone break the schema (a required key
	// missing, a key additionalProperties forbids), or the object's own
	// checks are beyond the pre-check.
	usable bool
}

// Fields returns the pre-check of eventType's data for objects holding
// exactly keys. It returns a Fields whose Valid is always false when the
// catalog does not declare eventType or cannot pre-check it.
func (c *Catalog) Fields(eventType string, keys []string) *Fields {
	f := &Fields{}
	var e *entry
	if c != nil {
		e = c.entries[eventType]
	}
	if e == nil || e.fast == nil {
		return f
	}
	root := e.fast
	if root.never || root.types != 0 && root.types&tObject == 0 || root.enum != nil {
		return f
	}
	have := make(map[string]bool, len(keys))
	for _, k := range keys {
		have[k] = true
	}
	for _, r := range root.required {
		if !have[r] {
			return f
		}
	}
	f.props = make([]*fastSchema, len(keys))
	for i, k := range keys {
		p, ok := root.props[k]
		if !ok && root.closed {
			return &Fields{}
		}
		f.props[i] = p
	}
	f.usable = true
	return f
}

// Valid reports whether the object holding keys[i]: values[i], for the
// keys Fields was made with, certainly conforms. values are JSON-compatible
// (see [Normalize]). false means "ask Validate".
func (f *Fields) Valid(values []any) bool {
	if f == nil || !f.usable || len(values) != len(f.props) {
		return false
	}
	for i, p := range f.props {
		if p != nil && !p.valid(values[i]) {
			return false
		}
	}
	return true
}
