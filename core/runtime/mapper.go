package runtime

import "github.com/tributary/tributary/core"

// Mapper turns one change into the events it yields. It is called from one
// goroutine per connector, or from several for the Mapper Rules returns.
// core/rules provides the YAML-driven implementation; see Rules.
type Mapper interface {
	Map(ch *core.Change) []Output
}

// Output is one event a mapper yields, or the reason it could not.
type Output struct {
	// Rule names the rule that produced the output.
	Rule string
	// Event is the event to publish; nil when Err is set.
	Event *core.Event
	// Data is the event data as built, for the dead-letter record.
	Data any
	// Err sends the output to the dead-letter topic instead.
	Err error
	// Reason classifies Err for metrics and dead-letter records, such as
	// "rule_error" or "schema_violation".
	Reason string
}

// MapperFunc adapts a function to a Mapper.
type MapperFunc func(ch *core.Change) []Output

// Map calls f.
func (f MapperFunc) Map(ch *core.Change) []Output { return f(ch) }

var _ Mapper = MapperFunc(nil)

// concurrentMapper is a Mapper safe for concurrent use: a large batch is
// mapped on several goroutines at once.
type concurrentMapper interface {
	Mapper
	concurrent()
}
