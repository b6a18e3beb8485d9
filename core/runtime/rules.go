package runtime

import (
	"errors"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
	"github.com/tributary/tributary/core/rules"
)

// Dead-letter reasons.
const (
	ReasonRuleError       = "rule_error"
	ReasonSchemaViolation = "schema_violation"
	// ReasonPublishRefused marks an event the stream refused for good (a
	// record larger than the broker accepts).
	ReasonPublishRefused = "publish_refused"
	// ReasonDeadLettered marks a change a rule sent to the dead-letter
	// topic on purpose, with deadLetter(reason); the reason is its error.
	ReasonDeadLettered = "dead_lettered_by_rule"
	// ReasonInvalidRecord marks a change its source could not read (a
	// file line that does not parse), dead-lettered before any rule.
	ReasonInvalidRecord = "invalid_record"
)

// Rules adapts a compiled rule set to a Mapper.
func Rules(s *rules.Set) Mapper { return rulesMapper{s} }

type rulesMapper struct{ s *rules.Set }

// concurrent marks the mapper safe for concurrent use: rules.Set.Apply is.
func (rulesMapper) concurrent() {}

func (m rulesMapper) Map(ch *core.Change) []Output {
	var out []Output
	m.s.Each(ch, func(r rules.Result) {
		if out == nil {
			out = make([]Output, 0, m.s.Len())
		}
		o := Output{Rule: r.Rule, Event: r.Event, Data: r.Data, Err: r.Err}
		if r.Err != nil {
			o.Reason = ReasonRuleError
			var ve *catalog.ValidationError
			var de *rules.DeadLetterError
			switch {
			case errors.As(r.Err, &ve):
				o.Reason = ReasonSchemaViolation
			case errors.As(r.Err, &de) && de.Rule == rules.InvalidRule:
				o.Reason = ReasonInvalidRecord
			case errors.As(r.Err, &de):
				o.Reason = ReasonDeadLettered
			}
		}
		out = append(out, o)
	})
	return out
}
