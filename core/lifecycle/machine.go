package lifecycle

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tributary/tributary/core/catalog"
	"github.com/tributary/tributary/core/rules"
)

// Machine is the compiled state machine of one entity: for each event type
// that concerns it, the expression giving the instance id and the
// transition the event makes. It is immutable and safe for concurrent use.
type Machine struct {
	// Entity is the declaration it was compiled from.
	Entity catalog.Entity
	trans  map[string]*rule
	within map[string]time.Duration
	final  map[string]bool
}

type rule struct {
	tr *catalog.Transition
	id *rules.EventProgram
}

// Compile compiles the id expressions of ents, each entity's default and
// each transition's own. Problems name the field below `entities` and its
// line, as catalog.ParseEntities does.
func Compile(ents []catalog.Entity) ([]*Machine, []catalog.EntityProblem) {
	var out []*Machine
	var probs []catalog.EntityProblem
	for _, e := range ents {
		m := &Machine{Entity: e, trans: map[string]*rule{}, within: map[string]time.Duration{}, final: map[string]bool{}}
		def, err := rules.CompileEvent("id", e.ID)
		if err != nil {
			probs = append(probs, catalog.EntityProblem{Path: e.Name + ".id", Line: e.Line, Message: exprMessage(err)})
		}
		for i := range m.Entity.Transitions {
			tr := &m.Entity.Transitions[i]
			r := &rule{tr: tr, id: def}
			if tr.ID != "" {
				p, err := rules.CompileEvent("id", tr.ID)
				if err != nil {
					probs = append(probs, catalog.EntityProblem{Path: e.Name + ".transitions." + tr.EventType + ".id", Line: tr.IDLine, Message: exprMessage(err)})
				}
				r.id = p
			}
			m.trans[tr.EventType] = r
		}
		for _, s := range e.States {
			if s.Within > 0 {
				m.within[s.Name] = s.Within
			}
		}
		for _, f := range e.Final {
			m.final[f] = true
		}
		out = append(out, m)
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return out, nil
}

// exprMessage is the message of a compile error without its "id: " prefix.
func exprMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "id: ")
}

// Name returns the entity's name.
func (m *Machine) Name() string { return m.Entity.Name }

// Types returns the event types that concern the entity.
func (m *Machine) Types() []string {
	out := make([]string, 0, len(m.trans))
	for _, tr := range m.Entity.Transitions {
		out = append(out, tr.EventType)
	}
	return out
}

// Within returns how long an instance may stay in state, or 0 for no limit.
func (m *Machine) Within(state string) time.Duration { return m.within[state] }

// Final reports whether state is a final state.
func (m *Machine) Final(state string) bool { return m.final[state] }

// ID returns the id of the instance ev concerns, evaluated in env (reset
// to ev by the caller). ok is false when ev's type does not concern the
// entity.
func (m *Machine) ID(eventType string, env *rules.EventEnv) (id string, ok bool, err error) {
	r := m.trans[eventType]
	if r == nil {
		return "", false, nil
	}
	id, err = r.id.Text(env)
	if err != nil {
		return "", true, fmt.Errorf("entity %s: id of a %s event: %w", m.Entity.Name, eventType, err)
	}
	if id == "" {
		return "", true, fmt.Errorf("entity %s: id of a %s event is empty (%s): give the event a subject, or set the transition's id to an expression that finds the %s id", m.Entity.Name, eventType, r.id.Path(), m.Entity.Name)
	}
	return id, true, nil
}

// Reasons a transition breaks the machine: the "reason" of a violation and
// of the tributary_lifecycle_violations_total metric.
const (
	// ReasonUnexpected: the instance is not in a state the event may come
	// from (shipped before billed, a second shipped).
	ReasonUnexpected = "unexpected_transition"
	// ReasonUnknownInstance: the first event of an instance does not start
	// one (an id first seen mid-life).
	ReasonUnknownInstance = "unknown_instance"
	// ReasonRestarted: an event that starts an instance came for one that
	// already exists.
	ReasonRestarted = "already_started"
)

// Verdict is what the machine makes of one event.
type Verdict struct {
	// Reason is "" when the event fits the machine, else one of the
	// Reason constants.
	Reason string
	// To is the state the instance is in after the event. An event that
	// breaks the machine leaves the instance where it was, except the
	// first event of an unknown instance, which starts it in the event's
	// target state so that it is followed from there.
	To string
	// Expected are the states the event may come from (empty: it starts an
	// instance).
	Expected []string
	// Target is the state the event leads to.
	Target string
}

// ErrNotConcerned is returned by Judge for an event type the entity has no
// transition for.
var ErrNotConcerned = errors.New("event type does not concern the entity")

// Judge returns what an event of eventType does to an instance in state
// (exists false when the instance is new).
func (m *Machine) Judge(exists bool, state, eventType string) (Verdict, error) {
	r := m.trans[eventType]
	if r == nil {
		return Verdict{}, fmt.Errorf("judge %s for %s: %w", eventType, m.Entity.Name, ErrNotConcerned)
	}
	v := Verdict{Expected: r.tr.From, Target: r.tr.To}
	starts := len(r.tr.From) == 0
	switch {
	case !exists && starts:
		v.To = r.tr.To
	case !exists:
		v.Reason, v.To = ReasonUnknownInstance, r.tr.To
	case starts:
		v.Reason, v.To = ReasonRestarted, state
	case slices.Contains(r.tr.From, state):
		v.To = r.tr.To
	default:
		v.Reason, v.To = ReasonUnexpected, state
	}
	return v, nil
}
