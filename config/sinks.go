package config

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/rules"
	"go.yaml.in/yaml/v3"
)

// SinkConfig is one sink instance: a system events are delivered to.
type SinkConfig struct {
	// Name is the unique sink name; the sink's consumer group is named
	// after it.
	Name string
	// Type is a registered sink type.
	Type string
	// Events are the event type globs (path.Match syntax) the sink
	// receives; empty means every type.
	Events []string
	// Subjects are the event subject globs (path.Match syntax) the sink
	// receives; empty means every subject.
	Subjects []string
	// When is the boolean expression an event must satisfy to be
	// delivered, as written; "" delivers every event. Compiled.Sinks holds
	// it compiled.
	When string
	// Map is what the sink delivers instead of the event, as written: an
	// expression, or a mapping of expressions; nil delivers the event as
	// it is. Compiled.Sinks holds it compiled.
	Map any
	// Retry is the schedule of delays between attempts; nil means the
	// runtime's default schedule, and an empty, non-nil one no retry at
	// all (the first failure dead-letters the event).
	Retry []time.Duration
	// Concurrency bounds the deliveries in progress at once; 0 means the
	// runtime's default.
	Concurrency int
	// MaxBatch bounds the events handed to the sink in one call; 0 means
	// the runtime's default.
	MaxBatch int
	// Start is SinkStartBeginning or SinkStartEnd: where the sink's
	// consumer group starts when it has no committed offsets.
	Start string
	// Disabled sinks are configured but not run.
	Disabled bool
	// Config holds the type's own fields; its Name is the sink's name.
	Config core.Config

	secrets []string
}

// NewSink returns a new, configured sink of the sink's type. The sidecar
// calls it to build the instance the runtime runs; Load has already
// checked that Configure accepts the configuration.
func (s SinkConfig) NewSink(reg *core.Registry) (core.Sink, error) {
	if reg == nil {
		reg = core.DefaultRegistry
	}
	spec, ok := reg.Sink(s.Type)
	if !ok {
		return nil, fmt.Errorf("create sink %q: unknown sink type %q", s.Name, s.Type)
	}
	sk := spec.New()
	if err := sk.Configure(core.NewConfig(s.Config.Name, copyMap(s.Config.Values))); err != nil {
		return nil, fmt.Errorf("configure sink %q: %w", s.Name, err)
	}
	return sk, nil
}

// buildSinks fills cfg.Sinks from the validated values of the sinks list.
// A schedule entry that is not a duration reads as 0 here; checkSinks
// reports it.
func (l *loader) buildSinks(cfg *Config, v map[string]any) {
	for _, item := range listOf(v, "sinks") {
		m, _ := item.(map[string]any)
		sc := SinkConfig{
			Name:        strOf(m, "name"),
			Type:        strOf(m, "type"),
			When:        strOf(m, "when"),
			Map:         m["map"],
			Concurrency: intOf(m, "concurrency"),
			MaxBatch:    intOf(m, "max_batch"),
			Start:       strOf(m, "start"),
			Disabled:    m["disabled"] == true,
		}
		for _, e := range listOf(m, "events") {
			s, _ := e.(string)
			sc.Events = append(sc.Events, s)
		}
		for _, e := range listOf(m, "subjects") {
			s, _ := e.(string)
			sc.Subjects = append(sc.Subjects, s)
		}
		if sched, ok := mapOf(m, "retry")["schedule"].([]any); ok {
			// A schedule written empty is kept empty, not nil: it means no
			// retry at all, where a left-out one means the default.
			sc.Retry = make([]time.Duration, 0, len(sched))
			for _, d := range sched {
				s, _ := d.(string)
				dur, _ := time.ParseDuration(strings.TrimSpace(s))
				sc.Retry = append(sc.Retry, dur)
			}
		}
		sc.Config = core.NewConfig(sc.Name, nil)
		cfg.Sinks = append(cfg.Sinks, sc)
	}
}

// checkSinks checks what the sinks' field types cannot say: unique names,
// event type globs, the retry schedule, the bounds.
func (l *loader) checkSinks(cfg *Config, v map[string]any, root *yaml.Node) {
	at := func(path string, format string, args ...any) {
		key, val := l.locate(root, path)
		l.problem(key, val, path, format, args...)
	}
	declared := declaredTypes(cfg.Catalog)
	emitted := emittedTypes(cfg.Connectors)
	perType := cfg.Stream.Topics.Mode == TopicsPerType
	list := listOf(v, "sinks")
	first := map[string]int{}
	for i, s := range cfg.Sinks {
		base := fmt.Sprintf("sinks[%d]", i)
		sv, _ := list[i].(map[string]any)
		switch j, dup := first[s.Name]; {
		case s.Name == "":
		case !connectorNameRe.MatchString(s.Name):
			at(base+".name", "%q is not a valid sink name: use lowercase letters, digits and underscores, starting with a letter (such as warehouse)", s.Name)
		case dup:
			line, _ := position(l.locate(root, fmt.Sprintf("sinks[%d].name", j)))
			at(base+".name", "sink name %q is already used by sinks[%d] (line %d); names must be unique", s.Name, j, line)
		default:
			first[s.Name] = i
		}
		for j, g := range s.Events {
			l.checkEventGlob(root, fmt.Sprintf("%s.events[%d]", base, j), g, declared, emitted, perType)
		}
		for j, g := range s.Subjects {
			if _, err := path.Match(g, ""); err != nil {
				at(fmt.Sprintf("%s.subjects[%d]", base, j), "%q is not a glob: %v; write * for any characters, ? for one, [abc] for one of a set", g, err)
			}
		}
		_, hasEvents := sv["events"]
		switch {
		case hasEvents && len(s.Events) == 0:
			at(base+".events", "an empty list delivers nothing: leave events out for every type, or list the types, such as [com.acme.order.*]")
		case !hasEvents && perType && len(declared) == 0 && len(emitted) == 0:
			at(base+".events", "the sink takes every event type, but this file knows none (it has no catalog and no rule), and with topics per type a sink reads only the topics of the types it knows: declare the types in the catalog, list them in events, or set stream.topics.mode: single")
		}
		if r := mapOf(sv, "retry"); r != nil {
			l.checkSchedule(root, base+".retry.schedule", r)
		}
		if _, ok := sv["concurrency"]; ok && s.Concurrency < 1 {
			at(base+".concurrency", "must be at least 1, such as 16")
		}
		if _, ok := sv["max_batch"]; ok && s.MaxBatch < 1 {
			at(base+".max_batch", "must be at least 1, such as 64")
		}
	}
}

// checkSchedule checks a sink's retry.schedule: each delay a positive
// duration. An empty schedule is valid: no retry at all.
func (l *loader) checkSchedule(root *yaml.Node, at string, retry map[string]any) {
	raw, ok := retry["schedule"].([]any)
	if !ok {
		return // absent, or reported by its type check
	}
	for j, item := range raw {
		p := fmt.Sprintf("%s[%d]", at, j)
		s, _ := item.(string)
		d, err := time.ParseDuration(strings.TrimSpace(s))
		key, val := l.locate(root, p)
		switch {
		case err != nil:
			l.problem(key, val, p, "%q is not a duration (examples: 30s, 5m, 1h30m)", s)
		case d <= 0:
			l.problem(key, val, p, "%s is not positive: each delay must be longer than zero, such as 5s", s)
		}
	}
}

// checkEventGlob checks one entry of a sink's events. With a catalog, the
// events on the stream are the catalog's types (rules may emit no other),
// so a glob that matches none of them can never deliver: an error.
// Without one, the stream may carry any type, from this file's rules or
// from other producers: a glob matching none of the types this file's
// rules emit is only a warning, unless topics are per type and the glob
// is a pattern: the sink reads the topics of the types it knows, so the
// pattern reads none.
func (l *loader) checkEventGlob(root *yaml.Node, at, glob string, declared, emitted []string, perType bool) {
	key, val := l.locate(root, at)
	if strings.TrimSpace(glob) == "" {
		l.problem(key, val, at, "an empty event type matches nothing: write a type or a glob, such as com.acme.order.*")
		return
	}
	if _, err := path.Match(glob, ""); err != nil {
		l.problem(key, val, at, "%q is not a valid glob: * matches any characters, ? one, [abc] one of a set; close every [ and end no pattern with \\", glob)
		return
	}
	literal := !strings.ContainsAny(glob, `*?[\`)
	switch {
	case len(declared) > 0:
		switch {
		case matchesAny(glob, declared):
		case literal:
			l.problem(key, val, at, "event type %q is not in the catalog%s: declare it there, or use one of %s", glob, typeSuggestion(glob, declared), typeList(declared))
		default:
			l.problem(key, val, at, "%q matches no event type in the catalog, so the sink would receive nothing: the catalog declares %s", glob, typeList(declared))
		}
	case matchesAny(glob, emitted):
	case !literal && perType:
		l.problem(key, val, at, "%q matches no event type %s, and with topics per type a sink reads only the topics of the types it knows: declare the types in the catalog, name them exactly in events, or set stream.topics.mode: single", glob, knownTypesNote(emitted))
	case len(emitted) > 0:
		hint := ""
		if literal {
			hint = typeSuggestion(glob, emitted)
		}
		l.warn(key, val, at, "%q matches no event type this file's rules emit%s: they emit %s; only other producers on the stream can send it events", glob, hint, typeList(emitted))
	}
}

// knownTypesNote says which event types a file without a catalog knows:
// those its rules emit.
func knownTypesNote(emitted []string) string {
	if len(emitted) == 0 {
		return "this file knows (it has no catalog and no rule)"
	}
	return "this file's rules emit (" + typeList(emitted) + ")"
}

// matchesAny reports whether glob matches one of types.
func matchesAny(glob string, types []string) bool {
	return slices.ContainsFunc(types, func(t string) bool {
		ok, _ := path.Match(glob, t)
		return ok
	})
}

// emittedTypes returns the distinct event types the connectors' rules
// emit, in file order.
func emittedTypes(conns []ConnectorConfig) []string {
	var out []string
	for _, c := range conns {
		for _, r := range c.Emit {
			if r.Type != "" && !slices.Contains(out, r.Type) {
				out = append(out, r.Type)
			}
		}
	}
	return out
}

// sinks validates every sink's config block against its type's fields and
// runs the type's Configure, as components does for connectors.
func (l *loader) sinks(cfg *Config, root *yaml.Node, reg *core.Registry) {
	seq := deref(root)
	if p, ok := l.lookup(seq, "sinks"); ok {
		seq = deref(p.value)
	}
	for i := range cfg.Sinks {
		var item *yaml.Node
		if seq != nil && seq.Kind == yaml.SequenceNode && i < len(seq.Content) {
			item = seq.Content[i]
		}
		l.sink(&cfg.Sinks[i], i, item, root, reg)
	}
}

func (l *loader) sink(s *SinkConfig, i int, item, root *yaml.Node, reg *core.Registry) {
	base := fmt.Sprintf("sinks[%d]", i)
	if s.Type == "" {
		return // reported as a missing field
	}
	spec, ok := reg.Sink(s.Type)
	if !ok {
		key, val := l.locate(root, base+".type")
		if s.Disabled {
			l.warn(key, val, base+".type", "unknown sink type %q in a disabled sink: its configuration is not checked", s.Type)
			return
		}
		l.problem(key, val, base+".type", "unknown sink type %q%s", s.Type, knownTypes(s.Type, reg.SinkTypes(), "sink"))
		return
	}
	values := l.block(item, item, base+".config", spec.Fields)
	s.Config = core.NewConfig(s.Name, values)
	s.secrets = l.secretsBelow(base + ".config")
	if !l.cleanBelow(base + ".config") {
		return
	}
	name := s.Name
	l.configure(root, base+".config", func() error {
		return spec.New().Configure(core.NewConfig(name, copyMap(values)))
	})
}

// SinkPrograms holds a sink's compiled expressions.
type SinkPrograms struct {
	// When is the compiled when, or nil when the sink sets none. It gives
	// a boolean (rules.CompileEventCondition).
	When *rules.EventProgram
	// Map is the compiled map, or nil when the sink sets none.
	Map *rules.EventData
}

// compileSinks compiles every sink's when and map, reporting each error
// at the path of the expression that has it. Compiled.Sinks is keyed by
// name, so a sink whose name has problems is compiled only for its errors.
func (l *loader) compileSinks(cfg *Config, root *yaml.Node) {
	cfg.Compiled.Sinks = map[string]SinkPrograms{}
	for i, s := range cfg.Sinks {
		base := fmt.Sprintf("sinks[%d]", i)
		var progs SinkPrograms
		ok := true
		if s.When != "" && l.cleanBelow(base+".when") {
			var err error
			progs.When, err = compileSafely(func() (*rules.EventProgram, error) {
				return rules.CompileEventCondition(base+".when", s.When)
			})
			ok = l.expressionErrors(root, base+".when", err) && ok
		}
		if s.Map != nil && l.cleanBelow(base+".map") {
			var err error
			progs.Map, err = compileSafely(func() (*rules.EventData, error) {
				return rules.CompileEventData(base+".map", s.Map)
			})
			ok = l.expressionErrors(root, base+".map", err) && ok
		}
		if ok && s.Name != "" && l.cleanBelow(base+".name") {
			cfg.Compiled.Sinks[s.Name] = progs
		}
	}
}

// compileSafely calls compile, turning a panic into an error as
// safeConfigure does.
func compileSafely[T any](compile func() (T, error)) (T, error) {
	var out T
	err := safeConfigure(func() error {
		var err error
		out, err = compile()
		return err
	})
	return out, err
}

// expressionErrors records the errors of compiling the expression at
// path: each *core.FieldError at the path it names (already from the
// file's root), anything else at path. It reports whether there were
// none.
func (l *loader) expressionErrors(root *yaml.Node, path string, err error) bool {
	if err == nil {
		return true
	}
	var fe *core.FieldError
	if !errors.As(err, &fe) {
		err = &core.FieldError{Path: path, Err: err}
	}
	l.fieldErrors(root, "", err)
	return false
}
