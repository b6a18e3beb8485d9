package catalog

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Entity is one kind of business object (an order, an invoice) declared
// in the configuration's `entities:` section: the states its instances go
// through and the event types that move them.
//
//	entities:
//	  order:
//	    id: event.subject             # the instance id, over each event
//	    initial: accepted
//	    final: [shipped, cancelled]
//	    window: 2s                    # reordering window
//	    retention: 720h               # how long finished instances are kept
//	    states:
//	      accepted: {}
//	      billed: {within: 2h}
//	    transitions:
//	      com.acme.order.accepted: {to: accepted}
//	      com.acme.order.billed: {from: [accepted], to: billed}
type Entity struct {
	// Name is the entity's name, lowercase snake_case.
	Name string
	// ID is the default expression over an event giving the instance id;
	// DefaultEntityID when not written.
	ID string
	// Initial is the state a new instance enters.
	Initial string
	// Final are the states an instance ends in.
	Final []string
	// Window is how long events of an instance are held to be judged in
	// event-time order; DefaultWindow when not written.
	Window time.Duration
	// Retention is how long an instance in a final state is kept after
	// it entered it (by event time); DefaultRetention when not written.
	Retention time.Duration
	// States are the declared states, in file order.
	States []State
	// Transitions are the event types that move an instance, in file
	// order.
	Transitions []Transition
	// Line is where the entity is declared.
	Line int
}

// State is one state of an entity.
type State struct {
	Name string
	// Within, when positive, is how long an instance may stay in the
	// state before it is reported stuck.
	Within time.Duration
	// Line and Column say where the state is declared.
	Line, Column int
}

// Transition is what one event type does to an instance.
type Transition struct {
	// EventType is the catalog type of the events.
	EventType string
	// From are the states the event may come in; empty means the event
	// starts an instance (To is then the initial state).
	From []string
	// To is the state the instance enters.
	To string
	// ID, when set, replaces the entity's id expression for this type.
	ID string
	// Line and Column say where the transition is written, IDLine where
	// its id is.
	Line, Column, IDLine int
}

// Defaults of an entity's settings.
const (
	DefaultEntityID  = "event.subject"
	DefaultWindow    = 2 * time.Second
	DefaultRetention = 30 * 24 * time.Hour
)

// EntityProblem is one mistake in the `entities:` section, where it is.
type EntityProblem struct {
	// Path is the field below `entities`, such as "order.states.billed.within".
	Path         string
	Line, Column int
	Message      string
}

// EntityOptions says what ParseEntities checks against.
type EntityOptions struct {
	// Types are the event types the catalog declares; a transition on any
	// other type is a problem. Nil checks nothing (a file without a
	// catalog).
	Types []string
	// Suggest returns the candidate closest to word, for "did you mean"
	// hints, or "". Nil suggests nothing.
	Suggest func(word string, candidates []string) string
}

var entityNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// ParseEntities reads the `entities:` mapping at node and checks it
// offline: its keys, durations, states named in transitions, initial and
// final states, transitions on types the catalog does not declare, states
// no transition reaches and non-final states no transition leaves. It
// returns the entities that parsed (those with problems too, as far as they
// parsed) and every problem, in file order.
func ParseEntities(node *yaml.Node, opts EntityOptions) ([]Entity, []EntityProblem) {
	p := &entityParser{opts: opts}
	node = derefNode(node)
	if node == nil || isNullNode(node) {
		return nil, nil
	}
	if node.Kind != yaml.MappingNode {
		p.add(node, "", "entities must be a mapping of entity names to their state machines, such as order: {initial: ..., states: ..., transitions: ...}")
		return nil, p.problems
	}
	var out []Entity
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], derefNode(node.Content[i+1])
		if !entityNameRe.MatchString(k.Value) {
			p.add(k, k.Value, "entity name %q is not lowercase snake_case, such as order", k.Value)
			continue
		}
		out = append(out, p.entity(k, v))
	}
	slices.SortStableFunc(p.problems, func(a, b EntityProblem) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	return out, p.problems
}

type entityParser struct {
	opts     EntityOptions
	problems []EntityProblem
}

func (p *entityParser) add(n *yaml.Node, path, format string, args ...any) {
	line, col := 0, 0
	if n != nil {
		line, col = n.Line, n.Column
	}
	p.problems = append(p.problems, EntityProblem{Path: path, Line: line, Column: col, Message: fmt.Sprintf(format, args...)})
}

func (p *entityParser) hint(word string, candidates []string) string {
	if p.opts.Suggest == nil {
		return ""
	}
	if s := p.opts.Suggest(word, candidates); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

// pairs returns the key and value nodes of mapping n, reporting anything
// else at path.
func (p *entityParser) pairs(n *yaml.Node, path, what string) [][2]*yaml.Node {
	n = derefNode(n)
	if n == nil || isNullNode(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.add(n, path, "%s must be a mapping", what)
		return nil
	}
	var out [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, [2]*yaml.Node{n.Content[i], derefNode(n.Content[i+1])})
	}
	return out
}

func (p *entityParser) scalar(n *yaml.Node, path string) string {
	if n == nil || isNullNode(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		p.add(n, path, "%s must be a single value", path)
		return ""
	}
	return n.Value
}

func (p *entityParser) duration(n *yaml.Node, path string) time.Duration {
	s := p.scalar(n, path)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		p.add(n, path, "%q is not a positive duration; write one such as 2s, 30m or 48h", s)
		return 0
	}
	return d
}

func (p *entityParser) names(n *yaml.Node, path string) []string {
	n = derefNode(n)
	if n == nil || isNullNode(n) {
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		return []string{n.Value}
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n, path, "%s must be a list of state names, such as [accepted, billed]", path)
		return nil
	}
	var out []string
	for _, c := range n.Content {
		out = append(out, p.scalar(derefNode(c), path))
	}
	return out
}

var (
	entityKeys     = []string{"id", "initial", "final", "window", "retention", "states", "transitions"}
	stateKeys      = []string{"within"}
	transitionKeys = []string{"from", "to", "id"}
)

func (p *entityParser) entity(key, n *yaml.Node) Entity {
	e := Entity{Name: key.Value, ID: DefaultEntityID, Window: DefaultWindow, Retention: DefaultRetention, Line: key.Line}
	base := e.Name
	var initialNode, finalNode *yaml.Node
	for _, kv := range p.pairs(n, base, "entity "+e.Name) {
		k, v := kv[0], kv[1]
		at := base + "." + k.Value
		switch k.Value {
		case "id":
			if s := p.scalar(v, at); s != "" {
				e.ID = s
			}
		case "initial":
			e.Initial, initialNode = p.scalar(v, at), v
		case "final":
			e.Final, finalNode = p.names(v, at), v
		case "window":
			if d := p.duration(v, at); d > 0 {
				e.Window = d
			}
		case "retention":
			if d := p.duration(v, at); d > 0 {
				e.Retention = d
			}
		case "states":
			for _, skv := range p.pairs(v, at, "states") {
				st := State{Name: skv[0].Value, Line: skv[0].Line, Column: skv[0].Column}
				if !entityNameRe.MatchString(st.Name) {
					p.add(skv[0], at+"."+st.Name, "state name %q is not lowercase snake_case, such as billed", st.Name)
				}
				for _, f := range p.pairs(skv[1], at+"."+st.Name, "state "+st.Name) {
					fat := at + "." + st.Name + "." + f[0].Value
					if f[0].Value == "within" {
						st.Within = p.duration(f[1], fat)
						continue
					}
					p.add(f[0], fat, "unknown key %q in state %s%s: a state takes %s", f[0].Value, st.Name, p.hint(f[0].Value, stateKeys), strings.Join(stateKeys, ", "))
				}
				e.States = append(e.States, st)
			}
		case "transitions":
			for _, tkv := range p.pairs(v, at, "transitions") {
				tr := Transition{EventType: tkv[0].Value, Line: tkv[0].Line, Column: tkv[0].Column}
				tat := at + "." + tr.EventType
				for _, f := range p.pairs(tkv[1], tat, "transition "+tr.EventType) {
					fat := tat + "." + f[0].Value
					switch f[0].Value {
					case "from":
						tr.From = p.names(f[1], fat)
					case "to":
						tr.To = p.scalar(f[1], fat)
					case "id":
						tr.ID, tr.IDLine = p.scalar(f[1], fat), f[1].Line
					default:
						p.add(f[0], fat, "unknown key %q in transition %s%s: a transition takes %s", f[0].Value, tr.EventType, p.hint(f[0].Value, transitionKeys), strings.Join(transitionKeys, ", "))
					}
				}
				if p.opts.Types != nil && !slices.Contains(p.opts.Types, tr.EventType) {
					p.add(tkv[0], tat, "event type %q is not in the catalog%s: declare it under catalog, or move this transition to a type the catalog declares", tr.EventType, hintDotted(p, tr.EventType))
				}
				if tr.To == "" {
					p.add(tkv[0], tat, "transition %s has no to: name the state its events lead to", tr.EventType)
				}
				e.Transitions = append(e.Transitions, tr)
			}
		default:
			p.add(k, at, "unknown key %q in entity %s%s: an entity takes %s", k.Value, e.Name, p.hint(k.Value, entityKeys), strings.Join(entityKeys, ", "))
		}
	}
	p.checkMachine(&e, key, initialNode, finalNode)
	return e
}

func hintDotted(p *entityParser, typ string) string {
	return p.hint(typ, p.opts.Types)
}

// checkMachine checks the states the entity names and the graph the
// transitions draw.
func (p *entityParser) checkMachine(e *Entity, key, initialNode, finalNode *yaml.Node) {
	base := e.Name
	states := make([]string, len(e.States))
	for i, s := range e.States {
		states[i] = s.Name
	}
	if len(states) == 0 {
		p.add(key, base+".states", "entity %s declares no states: list them under states, such as states: {accepted: {}, billed: {within: 2h}}", e.Name)
		return
	}
	known := func(n *yaml.Node, path, s string) bool {
		if slices.Contains(states, s) {
			return true
		}
		p.add(n, path, "state %q is not declared in the states of %s%s: declare it, or use one of %s", s, e.Name, p.hint(s, states), strings.Join(states, ", "))
		return false
	}
	if e.Initial == "" {
		p.add(key, base+".initial", "entity %s has no initial state: set initial to the state a new %s starts in", e.Name, e.Name)
	} else {
		known(initialNode, base+".initial", e.Initial)
	}
	for _, f := range e.Final {
		known(finalNode, base+".final", f)
	}
	if len(e.Transitions) == 0 {
		p.add(key, base+".transitions", "entity %s has no transitions: map each event type that moves a %s to {from: [...], to: state}", e.Name, e.Name)
		return
	}
	for _, tr := range e.Transitions {
		at := base + ".transitions." + tr.EventType
		n := &yaml.Node{Line: tr.Line, Column: tr.Column}
		for _, f := range tr.From {
			known(n, at+".from", f)
		}
		if tr.To != "" {
			known(n, at+".to", tr.To)
		}
		if len(tr.From) == 0 && tr.To != "" && e.Initial != "" && tr.To != e.Initial {
			p.add(n, at+".from", "transition %s has no from, so it starts an instance of %s, yet leads to %q, not the initial state %q: add from: [...] or lead it to %s", tr.EventType, e.Name, tr.To, e.Initial, e.Initial)
		}
	}
	// Reachability from the initial state.
	if e.Initial != "" && slices.Contains(states, e.Initial) {
		reached := map[string]bool{e.Initial: true}
		for changed := true; changed; {
			changed = false
			for _, tr := range e.Transitions {
				if reached[tr.To] {
					continue
				}
				for _, f := range tr.From {
					if reached[f] {
						reached[tr.To], changed = true, true
						break
					}
				}
			}
		}
		for _, s := range e.States {
			if !reached[s.Name] {
				p.add(&yaml.Node{Line: s.Line, Column: s.Column}, base+".states."+s.Name, "state %s of %s is unreachable: no transition leads to it from %s; add one, or remove the state", s.Name, e.Name, e.Initial)
			}
		}
	}
	for _, s := range e.States {
		if slices.Contains(e.Final, s.Name) {
			continue
		}
		out := false
		for _, tr := range e.Transitions {
			if slices.Contains(tr.From, s.Name) {
				out = true
				break
			}
		}
		if !out {
			p.add(&yaml.Node{Line: s.Line, Column: s.Column}, base+".states."+s.Name, "state %s of %s has no way out: no transition leaves it and it is not final; add a transition from it, or list it under final", s.Name, e.Name)
		}
	}
}

// StateNames returns the entity's state names in declaration order.
func (e *Entity) StateNames() []string {
	out := make([]string, len(e.States))
	for i, s := range e.States {
		out[i] = s.Name
	}
	return out
}

func derefNode(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 64; i++ {
		n = n.Alias
	}
	return n
}

func isNullNode(n *yaml.Node) bool {
	return n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}
