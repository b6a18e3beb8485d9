package lifecycle

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/tributary/tributary/core/catalog"
)

// Graph formats: Graphviz dot and Mermaid state diagrams.
const (
	FormatDot     = "dot"
	FormatMermaid = "mermaid"
)

// WriteGraph writes the state diagram of e to w in format (FormatDot or
// FormatMermaid): an arrow per transition, labelled with its event type,
// from a start point for the transitions that start an instance, and the
// final states marked. States with a time limit show it.
func WriteGraph(w io.Writer, e catalog.Entity, format string) error {
	var b strings.Builder
	switch format {
	case FormatDot:
		fmt.Fprintf(&b, "digraph %s {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n  __start [shape=point];\n", strconv.Quote(e.Name))
		for _, s := range e.States {
			label := s.Name
			if s.Within > 0 {
				label += "\\nwithin " + s.Within.String()
			}
			shape := ""
			if contains(e.Final, s.Name) {
				shape = ", peripheries=2"
			}
			fmt.Fprintf(&b, "  %s [label=%q%s];\n", strconv.Quote(s.Name), label, shape)
		}
		for _, tr := range e.Transitions {
			from := tr.From
			if len(from) == 0 {
				from = []string{"__start"}
			}
			for _, f := range from {
				fmt.Fprintf(&b, "  %s -> %s [label=%q];\n", strconv.Quote(f), strconv.Quote(tr.To), tr.EventType)
			}
		}
		b.WriteString("}\n")
	case FormatMermaid:
		b.WriteString("stateDiagram-v2\n")
		for _, s := range e.States {
			if s.Within > 0 {
				fmt.Fprintf(&b, "  %s: %s (within %s)\n", s.Name, s.Name, s.Within)
			}
		}
		for _, tr := range e.Transitions {
			from := tr.From
			if len(from) == 0 {
				from = []string{"[*]"}
			}
			for _, f := range from {
				fmt.Fprintf(&b, "  %s --> %s: %s\n", f, tr.To, tr.EventType)
			}
		}
		for _, f := range e.Final {
			fmt.Fprintf(&b, "  %s --> [*]\n", f)
		}
	default:
		return fmt.Errorf("graph format %q: use %s or %s", format, FormatDot, FormatMermaid)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
